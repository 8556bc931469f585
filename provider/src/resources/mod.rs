//! Resources: one file each, written against plain values and the [`Resource`] trait.
//!
//! Nothing here knows about gRPC or protobuf: the server decodes Terraform's requests,
//! applies the plan rules from [`crate::schema`], and calls these methods.

pub mod cluster_pki;
pub mod gitops_cluster;
pub mod instance;
pub mod network;
pub mod pool;
pub mod sealed_secret;
pub mod sealing_key;
#[cfg(test)]
mod test_values;
pub mod volume;

use std::sync::Arc;

use async_trait::async_trait;
use tf_cty::Value;
use tokio_util::sync::CancellationToken;

use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::Host;
use crate::schema::Schema;

#[cfg(test)]
pub use test_values::{empty_object, set_attr};

/// What an operation may use besides its inputs.
#[derive(Clone, Debug)]
pub struct Context {
    /// Cancelled when Terraform asks the provider to stop (Ctrl-C): long operations must
    /// check it and wind down, leaving nothing untracked behind.
    pub cancel: CancellationToken,
    /// The libvirt host of this provider instance, once the provider is configured. Opening
    /// it is lazy: holding it costs nothing until an operation calls it.
    pub host: Option<Arc<Host>>,
}

impl Context {
    /// The libvirt host, or an error saying the provider was not configured.
    pub fn host(&self) -> Result<&Arc<Host>, Diagnostic> {
        self.host.as_ref().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "This operation needs the libvirt host, but the provider's configuration is not known yet \
                 (its `uri` depends on something not yet created). Apply that first, e.g. with -target.",
            )
        })
    }
}

/// Why an operation failed, and what (if anything) exists because of it.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// What to tell the user.
    pub diagnostics: Diagnostics,
    /// State of an object that was partly created before the failure, so that Terraform
    /// tracks it (tainted) instead of leaving it orphaned.
    pub partial_state: Option<Value>,
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure { diagnostics: d.into(), partial_state: None }
    }
}

impl From<Diagnostics> for Failure {
    fn from(diagnostics: Diagnostics) -> Self {
        Failure { diagnostics, partial_state: None }
    }
}

/// The result of a resource operation.
pub type Outcome<T> = Result<T, Failure>;

/// A managed resource type.
#[async_trait]
pub trait Resource: Send + Sync {
    /// The type name, e.g. `kvm_sealing_key`.
    fn type_name(&self) -> &'static str;

    /// The schema (built once; the same value on every call).
    fn schema(&self) -> &Schema;

    /// Checks that span several attributes. `config` may contain unknown values; skip
    /// those (they are checked again at plan time).
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Adjusts the plan after the generic rules ran: fills in values known at plan time,
    /// or marks computed values unknown that the change will alter. `prior` is null on
    /// create. Must keep to Terraform's rules (see [`crate::schema::check_plan_valid`]).
    /// Write-only attributes are null in `prior` and `planned` (and stay so); their values, if
    /// a resource needs them at plan time, are in `config`.
    ///
    /// Plans must work where the libvirt host is unreachable (CI validating plans), so this
    /// must not call the host for a create.
    async fn modify_plan(&self, _ctx: &Context, _prior: &Value, _config: &Value, _planned: &mut Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Attributes whose planned change needs the object replaced although they are not
    /// `force_new` in general (a volume may grow in place but not shrink).
    fn replace_when(&self, _prior: &Value, _planned: &Value) -> Vec<tf_cty::Path> {
        Vec::new()
    }

    /// Creates the object; returns its state (wholly known).
    ///
    /// `planned` (here and in [`Resource::update`]) carries the configuration's values of the
    /// write-only attributes, which are in no plan or state; whatever the operation returns has
    /// them nulled by the server, so returning `planned` as the state is fine.
    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value>;

    /// Reads the object as it really is; `None` if it no longer exists.
    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>>;

    /// Updates the object in place; returns its new state. `planned` carries the write-only
    /// values as in [`Resource::create`]; `prior` never does.
    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value>;

    /// Deletes the object.
    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()>;

    /// Builds the state of an existing object from the ID a user gave to `terraform import`.
    async fn import(&self, ctx: &Context, id: &str) -> Outcome<Value>;

    /// Migrates stored state (as JSON) from an older schema version to the current one.
    /// Called only for versions below the current one.
    fn upgrade_state(&self, from_version: i64, _state: serde_json::Value) -> Result<serde_json::Value, Diagnostic> {
        Err(Diagnostic::error(
            "Unsupported state version",
            format!(
                "{} cannot upgrade state from schema version {from_version}; this provider writes version {}.",
                self.type_name(),
                self.schema().version
            ),
        ))
    }
}

/// A data source type: reads something that Terraform does not manage.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// The type name, e.g. `kvm_host`.
    fn type_name(&self) -> &'static str;

    /// The schema (built once).
    fn schema(&self) -> &Schema;

    /// Reads the data; `config` is wholly known. Returns the full object.
    async fn read(&self, ctx: &Context, config: &Value) -> Outcome<Value>;
}

/// What opening an ephemeral resource produced.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The result: the configuration with every computed attribute set (wholly known).
    pub result: Value,
    /// Opaque bytes Terraform keeps in memory and hands to `renew` and `close`; never stored.
    pub private: Option<Vec<u8>>,
    /// Warnings to show although the open succeeded.
    pub diagnostics: Diagnostics,
}

/// An ephemeral resource type (Terraform ≥ 1.10): a value made for the current Terraform run
/// only, never stored in state or plan. Terraform opens it (each plan and apply), uses the
/// result, and closes it when done. Renewal is not offered: `open` sets no renewal time, so
/// Terraform only calls `renew` if a future resource type asks for it.
#[async_trait]
pub trait EphemeralResource: Send + Sync {
    /// The type name, e.g. `kvm_cluster_credentials`.
    fn type_name(&self) -> &'static str;

    /// The schema (built once).
    fn schema(&self) -> &Schema;

    /// Checks beyond the attribute validators. `config` may contain unknown values; skip those
    /// (Terraform never opens an ephemeral resource whose configuration is not wholly known).
    fn validate(&self, _config: &Value) -> Diagnostics {
        Diagnostics::new()
    }

    /// Makes the value; `config` is wholly known and valid.
    async fn open(&self, ctx: &Context, config: &Value) -> Outcome<Opened>;

    /// Extends what `open` made, given its private bytes. By default there is nothing to renew:
    /// the answer is success, and no further renewal.
    async fn renew(&self, _ctx: &Context, _private: Option<&[u8]>) -> Outcome<()> {
        Ok(())
    }

    /// Releases what `open` made, given its private bytes. By default nothing to release.
    async fn close(&self, _ctx: &Context, _private: Option<&[u8]>) -> Outcome<()> {
        Ok(())
    }
}
