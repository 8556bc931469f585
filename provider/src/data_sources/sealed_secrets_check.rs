//! `kvm_sealed_secrets_check`: does every SealedSecret under a directory unseal with the keys
//! the cluster will hold? The same check as `kvm-gitops verify`, as a data source, so a
//! `precondition` or `postcondition` can stop a plan that would build a cluster unable to open
//! its own secrets. Offline: reads files, needs no libvirt host.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kvm_sealing::reseal::{self, Verification};
use kvm_sealing::tree;
use kvm_sealing::{SealingCertificate, UnsealingKey};
use tf_cty::{Type, Value};

use crate::diag::Diagnostic;
use crate::model::{Field, Model};
use crate::resources::{Context, DataSource, Outcome};
use crate::schema::{Attribute, Block, Schema};

/// The `kvm_sealed_secrets_check` data source.
pub struct SealedSecretsCheck {
    schema: Schema,
}

impl Default for SealedSecretsCheck {
    fn default() -> Self {
        Self::new()
    }
}

/// The type of one element of `failures`.
fn failure_type() -> Type {
    Type::object([
        ("file", Type::String),
        ("name", Type::String),
        ("namespace", Type::String),
        ("reason", Type::String),
    ])
}

/// Checks every element of `private_keys` at plan time. The message names the index, never the key.
fn validate_private_keys(value: &Value) -> Result<(), String> {
    let Value::List(items) = value else { return Ok(()) };
    if items.is_empty() {
        return Err("give at least one private key: the keys the cluster will hold (e.g. \
                    [kvm_sealing_key.main.private_key_pem])"
            .to_string());
    }
    for (i, item) in items.iter().enumerate() {
        let Some(pem) = item.as_str() else {
            return Err(format!("private_keys[{i}] is null: give a PEM private key"));
        };
        UnsealingKey::from_pem(pem).map_err(|e| format!("private_keys[{i}]: {e}"))?;
    }
    Ok(())
}

fn validate_certificate(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(pem) => SealingCertificate::from_pem(pem).map(|_| ()).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn validate_directory(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some("") => Err("give the directory of the GitOps tree, e.g. \"${path.module}/gitops\"".to_string()),
        _ => Ok(()),
    }
}

impl SealedSecretsCheck {
    /// The data source with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "Checks, offline, that every SealedSecret under a directory (`.yaml`, `.yml` and `.json` files, \
             walked recursively, hidden entries skipped) unseals with the given private keys, and optionally that \
             each is sealed to the newest key. Use `ok` in a `precondition` or `postcondition` to stop a plan that \
             would build a cluster unable to open its own secrets. Same check as `kvm-gitops verify`.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The directory checked."))
        .attribute(
            Attribute::required("directory", Type::String)
                .describe("Directory of the GitOps tree, relative to Terraform's working directory or absolute.")
                .validate(validate_directory),
        )
        .attribute(
            Attribute::required("private_keys", Type::list(Type::String))
                .sensitive()
                .describe(
                    "The private keys (PEM) the cluster will hold, e.g. `[kvm_sealing_key.new.private_key_pem, \
                     kvm_sealing_key.old.private_key_pem]`.",
                )
                .validate(validate_private_keys),
        )
        .attribute(
            Attribute::optional("newest_certificate", Type::String)
                .describe(
                    "If set, a SealedSecret also fails unless it is sealed to this certificate's key (PEM), e.g. \
                     before removing an old key.",
                )
                .validate(validate_certificate),
        )
        .attribute(Attribute::computed("ok", Type::Bool).describe("True when every SealedSecret passed."))
        // Not `count`: Terraform reserves `<resource>.count` and refuses to read such an attribute.
        .attribute(Attribute::computed("secret_count", Type::Number).describe("Number of SealedSecrets found."))
        .attribute(Attribute::computed("failures", Type::list(failure_type())).describe(
            "One object per SealedSecret that failed (and per unreadable file that mentions SealedSecret): `file` \
             (relative to `directory`), `name`, `namespace` (empty when unset) and `reason`.",
        ));
        SealedSecretsCheck { schema: Schema::new(0, block) }
    }
}

crate::model! {
    /// A `kvm_sealed_secrets_check` configuration and result (`CheckPlan`: while planning).
    struct CheckModel / CheckPlan {
        /// The directory checked.
        id: Field<String>,
        directory: String,
        private_keys: Vec<String>,
        newest_certificate: Option<String>,
        ok: Field<bool>,
        secret_count: Field<i64>,
        failures: Field<Vec<FailureModel>>,
    }
}

crate::model! {
    /// One element of `failures`.
    struct FailureModel / FailurePlan {
        file: String,
        name: String,
        namespace: String,
        reason: String,
    }
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// The `failures` list of a verification.
fn failures(verification: &Verification, root: &Path) -> Vec<FailureModel> {
    let mut out: Vec<FailureModel> = verification
        .failures()
        .map(|c| FailureModel {
            file: relative(&c.location.file, root),
            name: c.location.name.clone(),
            namespace: c.location.namespace.clone().unwrap_or_default(),
            reason: c.failure.clone().unwrap_or_default(),
        })
        .collect();
    out.extend(verification.unreadable.iter().map(|u| FailureModel {
        file: relative(&u.file, root),
        name: String::new(),
        namespace: String::new(),
        reason: format!("document {}: {} (it mentions SealedSecret)", u.document, u.reason),
    }));
    out
}

#[async_trait]
impl DataSource for SealedSecretsCheck {
    fn type_name(&self) -> &'static str {
        "kvm_sealed_secrets_check"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn read(&self, _ctx: &Context, config: &Value) -> Outcome<Value> {
        let mut state = CheckModel::from_value(config)?;
        let directory = PathBuf::from(&state.directory);
        let key_error = |detail: String| {
            Diagnostic::attribute_error(tf_cty::Path::root().join_attr("private_keys"), "Invalid private key", detail)
        };
        let mut keys = Vec::new();
        for (i, pem) in state.private_keys.iter().enumerate() {
            keys.push(UnsealingKey::from_pem(pem).map_err(|e| key_error(format!("private_keys[{i}]: {e}")))?);
        }
        let newest = match &state.newest_certificate {
            Some(pem) => Some(SealingCertificate::from_pem(pem).map_err(|e| {
                Diagnostic::attribute_error(
                    tf_cty::Path::root().join_attr("newest_certificate"),
                    "Invalid certificate",
                    e.to_string(),
                )
            })?),
            None => None,
        };
        // Reading a tree and RSA decryption are blocking work: keep them off the async workers.
        let root = directory.clone();
        let verification = tokio::task::spawn_blocking(move || {
            let files = tree::scan_tree(std::slice::from_ref(&root))?;
            Ok::<_, tree::TreeError>(reseal::verify(&files, &keys, newest.as_ref()))
        })
        .await
        .map_err(|e| Diagnostic::error("Internal error", format!("the check stopped: {e}")))?
        .map_err(|e| {
            Diagnostic::attribute_error(
                tf_cty::Path::root().join_attr("directory"),
                "Cannot read the directory",
                e.to_string(),
            )
        })?;

        state.id = Field::Known(directory.display().to_string());
        state.ok = Field::Known(verification.ok());
        state.secret_count = Field::Known(verification.secrets.len() as i64);
        state.failures = Field::Known(failures(&verification, &directory));
        Ok(state.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_time_validators_name_the_index_not_the_key() {
        assert!(validate_private_keys(&Value::List(vec![])).unwrap_err().contains("at least one"));
        let e = validate_private_keys(&Value::List(vec![Value::string("-----BEGIN CERTIFICATE-----\nhunter2\n")]))
            .unwrap_err();
        assert!(e.starts_with("private_keys[0]:"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(validate_certificate(&Value::string("nope")).is_err());
        crate::model::check::<CheckModel>(&SealedSecretsCheck::new().schema.block).unwrap();
        assert!(validate_certificate(&Value::Null).is_ok());
        assert!(validate_directory(&Value::string("")).is_err());
        assert!(validate_directory(&Value::string("gitops")).is_ok());
    }

    #[test]
    fn schema_is_valid() {
        let ds = SealedSecretsCheck::new();
        assert!(ds.schema().problems().is_empty(), "{:?}", ds.schema().problems());
    }
}
