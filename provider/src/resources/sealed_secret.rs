//! `kvm_sealed_secret`: values sealed for the Sealed Secrets controller, as a
//! SealedSecret manifest ready to commit to Git.
//!
//! Sealing is randomised, so the ciphertext is made once, on create, and kept in state;
//! every input forces replacement, so a plan with unchanged inputs shows no changes and a
//! changed input re-seals.
//!
//! The values come from `values` (stored in the state, sensitive) or, with Terraform 1.11 and
//! later, from the write-only `values_wo`, which is never stored: only `values_wo_version` is,
//! and a change of it is what re-seals (the write-only values cannot be compared with anything).

use std::collections::BTreeMap;

use async_trait::async_trait;
use kvm_sealing::{Scope, SealingCertificate, SecretSpec};
use tf_cty::{Path, Type, Value};

use super::{Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};
use crate::schema::{one_of, Attribute, Block, Schema};

const SCOPES: &[&str] = &["strict", "namespace-wide", "cluster-wide"];
/// `type` when not configured.
const DEFAULT_TYPE: &str = "Opaque";
/// `scope` when not configured.
const DEFAULT_SCOPE: &str = "strict";

crate::model! {
    /// A `kvm_sealed_secret` configuration, plan or state (`SecretPlan`: the same while planning).
    #[derive(Default)]
    struct SecretModel / SecretPlan {
        /// `<namespace>/<name>`.
        id: Field<String>,
        namespace: String,
        name: String,
        scope: Option<String>,
        secret_type as "type": Option<String>,
        /// Null in an imported state: the manifest alone does not tell the certificate.
        certificate_pem: Option<String>,
        values_wo: Option<BTreeMap<String, String>>,
        values_wo_version: Option<i64>,
        values: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        annotations: Option<BTreeMap<String, String>>,
        manifest: Field<String>,
    }
}

/// The `kvm_sealed_secret` resource type.
pub struct SealedSecret {
    schema: Schema,
}

impl SealedSecret {
    /// The resource type with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "Seals values with a Sealed Secrets certificate (offline, like `kubeseal --cert`) and exposes the \
             SealedSecret manifest, byte-compatible with the controller. The ciphertext is made once and stays \
             stable until an input changes; a change re-seals (replacement). With Terraform 1.11 and later the \
             values can be write-only (`values_wo` with `values_wo_version`), so they never reach the state.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("`<namespace>/<name>`."))
        .attribute(
            Attribute::required("namespace", Type::String)
                .force_new()
                .validate(|v: &Value| dns_check(v, kvm_validate::k8s_namespace))
                .describe("Namespace of the Secret the controller will create."),
        )
        .attribute(
            Attribute::required("name", Type::String)
                .force_new()
                .validate(|v: &Value| dns_check(v, kvm_validate::k8s_name))
                .describe("Name of the Secret the controller will create."),
        )
        .attribute(
            Attribute::optional("scope", Type::String)
                .default_value(Value::string(DEFAULT_SCOPE))
                .force_new()
                .validate(one_of(SCOPES))
                .describe("`strict` (default: only this name in this namespace can unseal), `namespace-wide` (any name in this namespace) or `cluster-wide`."),
        )
        .attribute(
            Attribute::optional("type", Type::String)
                .default_value(Value::string(DEFAULT_TYPE))
                .force_new()
                .describe("Type of the Secret the controller will create. Default `Opaque`."),
        )
        .attribute(
            Attribute::required("certificate_pem", Type::String)
                .force_new()
                .validate(check_certificate)
                .describe("The controller's certificate, PEM (for instance `kvm_sealing_key.x.certificate_pem`)."),
        )
        .attribute(
            Attribute::optional("values_wo", Type::map(Type::String))
                .write_only()
                .sensitive()
                .describe("The secret's values by key, write-only (Terraform 1.11 and later): used to seal, never stored in the state or a plan, so it may come from ephemeral values. Set `values_wo_version` with it and change the version to re-seal new values. Exactly one of `values_wo` and `values` is set."),
        )
        .attribute(
            Attribute::optional("values_wo_version", Type::Number)
                .force_new()
                .describe("Version of `values_wo`, kept in the state: a change re-seals (replacement). A change of `values_wo` alone plans nothing, since its value is never stored to compare with."),
        )
        .attribute(
            Attribute::optional("values", Type::map(Type::String))
                .sensitive()
                .force_new()
                .prefer_write_only("values_wo")
                .describe("The secret's values by key, stored in the state (sensitive: never shown in plans or logs). With Terraform 1.11 and later prefer `values_wo`. Exactly one of `values` and `values_wo` is set."),
        )
        .attribute(
            Attribute::optional("labels", Type::map(Type::String))
                .force_new()
                .describe("Labels for the Secret the controller will create (the SealedSecret's template)."),
        )
        .attribute(
            Attribute::optional("annotations", Type::map(Type::String))
                .force_new()
                .describe("Annotations for the Secret the controller will create (the SealedSecret's template)."),
        )
        .attribute(Attribute::computed("manifest", Type::String).describe("The SealedSecret as YAML, ready to commit to Git."));
        SealedSecret { schema: Schema::new(0, block) }
    }
}

impl Default for SealedSecret {
    fn default() -> Self {
        Self::new()
    }
}

fn dns_check(v: &Value, check: fn(&str) -> Result<(), kvm_validate::Invalid>) -> Result<(), String> {
    v.as_str().map_or(Ok(()), |s| check(s).map_err(|e| e.to_string()))
}

fn check_certificate(v: &Value) -> Result<(), String> {
    let Some(pem) = v.as_str() else { return Ok(()) };
    let cert = SealingCertificate::from_pem(pem).map_err(|e| e.to_string())?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if cert.is_expired_at(now) {
        return Err(format!(
            "the certificate expired at {}; kubeseal and the controller refuse to seal with an expired certificate. Renew the sealing key or adopt a valid one.",
            cert.not_after()
        ));
    }
    Ok(())
}

#[async_trait]
impl Resource for SealedSecret {
    fn type_name(&self) -> &'static str {
        "kvm_sealed_secret"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(config) = SecretPlan::from_value(config) else { return diags };
        match (!config.values.is_null(), !config.values_wo.is_null()) {
            (true, true) => diags.push(Diagnostic::attribute_error(
                Path::attr("values_wo"),
                "Conflicting values",
                "Give either `values_wo` (write-only, Terraform 1.11 and later) or `values`, not both.",
            )),
            (false, false) => diags.push(Diagnostic::attribute_error(
                Path::attr("values"),
                "Missing values",
                "Set `values_wo` (write-only, never stored; Terraform 1.11 and later) or `values`.",
            )),
            _ => {}
        }
        if !config.values_wo_version.is_null() && config.values_wo.is_null() {
            diags.push(Diagnostic::attribute_error(
                Path::attr("values_wo_version"),
                "Version without write-only values",
                "`values_wo_version` versions `values_wo`; set `values_wo` too, or remove the version.",
            ));
        }
        diags
    }

    async fn create(&self, _ctx: &Context, planned: &Value) -> Outcome<Value> {
        let mut state = SecretModel::from_value(planned)?;
        let (namespace, name) = (state.namespace.as_str(), state.name.as_str());
        let scope: Scope = state
            .scope
            .as_deref()
            .unwrap_or(DEFAULT_SCOPE)
            .parse()
            .map_err(|e: String| Diagnostic::error("Invalid scope", e))?;
        let certificate = state.certificate_pem.as_deref().ok_or_else(|| {
            Diagnostic::attribute_error(Path::attr("certificate_pem"), "Missing certificate", "Set `certificate_pem`.")
        })?;
        let cert = SealingCertificate::from_pem(certificate)
            .map_err(|e| Diagnostic::error("Invalid certificate", e.to_string()))?;
        // `planned` carries `values_wo` from the configuration (see Resource::create).
        let given = state.values.as_ref().or(state.values_wo.as_ref());
        let values: BTreeMap<String, Vec<u8>> =
            given.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        let (labels, annotations) =
            (state.labels.clone().unwrap_or_default(), state.annotations.clone().unwrap_or_default());
        let spec = SecretSpec {
            namespace,
            name,
            scope,
            secret_type: state.secret_type.as_deref().unwrap_or(DEFAULT_TYPE),
            values: &values,
            labels: &labels,
            annotations: &annotations,
        };
        let sealed =
            kvm_sealing::seal_secret(&cert, &spec).map_err(|e| Diagnostic::error("Sealing failed", e.to_string()))?;
        tracing::info!(namespace, name, %scope, keys = values.len(), "sealed secret");
        state.id = Field::Known(format!("{namespace}/{name}"));
        state.manifest = Field::Known(sealed.to_yaml());
        Ok(state.to_value())
    }

    async fn read(&self, _ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        // The manifest lives in state (and in Git): nothing remote to compare with.
        Ok(Some(current.clone()))
    }

    async fn update(&self, _ctx: &Context, _prior: &Value, planned: &Value) -> Outcome<Value> {
        // Every input forces replacement; nothing changes in place.
        Ok(planned.clone())
    }

    async fn delete(&self, _ctx: &Context, _prior: &Value) -> Outcome<()> {
        Ok(())
    }

    async fn import(&self, _ctx: &Context, id: &str) -> Outcome<Value> {
        let text = std::fs::read_to_string(id).map_err(|e| {
            Diagnostic::error(
                "Cannot import sealed secret",
                format!(
                    "The import ID is the path of a SealedSecret manifest (YAML or JSON); reading {id:?} failed: {e}"
                ),
            )
        })?;
        let sealed = kvm_sealing::SealedSecret::from_yaml(&text)
            .map_err(|e| Diagnostic::error("Cannot import sealed secret", format!("{id}: {e}")))?;
        let namespace = sealed.metadata.namespace.clone().unwrap_or_default();
        let name = sealed.metadata.name.clone();
        let secret_type = sealed.spec.template.as_ref().and_then(|t| t.secret_type.clone());
        let state = SecretModel {
            id: Field::Known(format!("{namespace}/{name}")),
            namespace,
            name,
            scope: Some(sealed.scope().to_string()),
            secret_type: Some(secret_type.unwrap_or_else(|| DEFAULT_TYPE.into())),
            manifest: Field::Known(sealed.to_yaml()),
            ..Default::default()
        };
        Ok(state.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<SecretModel>(&SealedSecret::new().schema.block).unwrap();
    }
}
