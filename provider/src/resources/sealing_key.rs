//! `kvm_sealing_key`: the RSA key pair and certificate the Sealed Secrets controller
//! seals with, generated here or adopted from a backup, so that a recreated cluster gets
//! the same key back.

use async_trait::async_trait;
use kvm_sealing::{KeyOptions, SealingCertificate, SealingKey as KeyPair};
use tf_cty::{Number, Path, Type, Value};

use super::{Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};
use crate::schema::{int_range, non_empty, Attribute, Block, Schema};

/// Default certificate lifetime: the controller's own default (10 years).
const DEFAULT_VALIDITY_DAYS: i64 = 3650;
/// Default subject common name.
const DEFAULT_COMMON_NAME: &str = "sealed-secret";

crate::model! {
    /// A `kvm_sealing_key` configuration, plan or state (`KeyPlan`: the same while planning).
    #[derive(Default)]
    struct KeyModel / KeyPlan {
        id: Field<String>,
        common_name: Option<String>,
        validity_days: Option<i64>,
        private_key_pem: Field<String>,
        certificate_pem: Field<String>,
        fingerprint: Field<String>,
        not_before: Field<String>,
        not_after: Field<String>,
    }
}

/// Sets what follows from a key pair on a `KeyModel` or a `KeyPlan` (the same fields).
macro_rules! set_from_pair {
    ($model:expr, $pair:expr) => {{
        let (model, pair) = (&mut $model, &$pair);
        let cert = pair.certificate();
        model.id = Field::Known(cert.fingerprint());
        model.fingerprint = Field::Known(cert.fingerprint());
        model.not_before = Field::Known(cert.not_before());
        model.not_after = Field::Known(cert.not_after());
        model.private_key_pem = Field::Known(pair.private_key_pem().to_string());
        model.certificate_pem = Field::Known(pair.certificate_pem().to_string());
    }};
}

/// The `kvm_sealing_key` resource type.
pub struct SealingKey {
    schema: Schema,
}

impl SealingKey {
    /// The resource type with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A Sealed Secrets sealing key: an RSA-4096 key pair with a self-signed certificate, in the form the \
             controller keeps in its `kubernetes.io/tls` Secret. Generated on create, or adopted from an existing \
             pair (set both `private_key_pem` and `certificate_pem`) so that a disaster-recovery drill brings back \
             a lost cluster's key. The key never changes unless the resource is replaced.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The public key fingerprint (same as `fingerprint`)."))
        .attribute(
            Attribute::optional("common_name", Type::String)
                .default_value(Value::string(DEFAULT_COMMON_NAME))
                .force_new()
                .validate(non_empty())
                .describe("Subject and issuer common name of a generated certificate. Default `sealed-secret`. Ignored when a pair is adopted."),
        )
        .attribute(
            Attribute::optional("validity_days", Type::Number)
                .default_value(Value::Number(Number::from_i64(DEFAULT_VALIDITY_DAYS)))
                .force_new()
                .validate(int_range(1, 36_500))
                .describe("Lifetime of a generated certificate in days. Default 3650 (10 years, as the controller). kubeseal refuses to seal with an expired certificate. Ignored when a pair is adopted."),
        )
        .attribute(
            Attribute::optional_computed("private_key_pem", Type::String)
                .sensitive()
                .force_new()
                .describe("The private key, PKCS#1 PEM (`RSA PRIVATE KEY`). Set it (with `certificate_pem`) to adopt an existing key; PKCS#8 input is accepted and stored as PKCS#1."),
        )
        .attribute(
            Attribute::optional_computed("certificate_pem", Type::String)
                .force_new()
                .describe("The self-signed certificate, PEM: what `kubeseal --cert` and `kvm_sealed_secret` take. Set it (with `private_key_pem`) to adopt an existing pair."),
        )
        .attribute(Attribute::computed("fingerprint", Type::String).describe("SHA-256 of the public key (DER SubjectPublicKeyInfo), lowercase hex."))
        .attribute(Attribute::computed("not_before", Type::String).describe("Start of the certificate's validity, RFC 3339."))
        .attribute(Attribute::computed("not_after", Type::String).describe("End of the certificate's validity, RFC 3339."));
        SealingKey { schema: Schema::new(0, block) }
    }
}

impl Default for SealingKey {
    fn default() -> Self {
        Self::new()
    }
}

/// The adopted pair, if the configuration gives one whose values are known.
fn adopted_pair(key: &Field<String>, cert: &Field<String>) -> Result<Option<KeyPair>, Diagnostic> {
    match (key.known(), cert.known()) {
        (Some(key), Some(cert)) => parse_pair(key, cert).map(Some),
        _ => Ok(None),
    }
}

/// Half a key pair: `given` is set, `missing` is not.
fn incomplete_pair(given: &str, missing: &str) -> Diagnostic {
    Diagnostic::attribute_error(
        Path::attr(missing),
        "Incomplete key pair",
        format!("\"{given}\" is set but \"{missing}\" is not: to adopt an existing sealing key give both; to generate a new one give neither."),
    )
}

/// Parses a key and certificate given by the user, blaming the right attribute.
fn parse_pair(key: &str, cert: &str) -> Result<KeyPair, Diagnostic> {
    if let Err(e) = SealingCertificate::from_pem(cert) {
        return Err(Diagnostic::attribute_error(Path::attr("certificate_pem"), "Invalid certificate", e.to_string()));
    }
    KeyPair::from_pem(key, cert).map_err(|e| {
        let path = if e.is_mismatch() { "certificate_pem" } else { "private_key_pem" };
        Diagnostic::attribute_error(Path::attr(path), "Invalid sealing key", e.to_string())
    })
}

#[async_trait]
impl Resource for SealingKey {
    fn type_name(&self) -> &'static str {
        "kvm_sealing_key"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(config) = KeyPlan::from_value(config) else { return diags };
        let key_set = !config.private_key_pem.is_null();
        let cert_set = !config.certificate_pem.is_null();
        // A certificate alone is allowed here: it can name the key already in state, which is
        // what `terraform plan -generate-config-out` writes for an imported key (it never writes
        // a sensitive value such as the private key). For a new key, `modify_plan` refuses it.
        if key_set && !cert_set {
            diags.push(incomplete_pair("private_key_pem", "certificate_pem"));
            return diags;
        }
        if let Err(d) = adopted_pair(&config.private_key_pem, &config.certificate_pem) {
            diags.push(d);
        }
        diags
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        // An adopted pair is known at plan time, and so is everything derived from it:
        // downstream resources then plan with real values instead of "known after apply".
        if !prior.is_null() || planned.is_null() {
            return Diagnostics::new();
        }
        let (config, mut plan) = match (KeyPlan::from_value(config), KeyPlan::from_value(planned)) {
            (Ok(config), Ok(plan)) => (config, plan),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        };
        if !config.certificate_pem.is_null() && config.private_key_pem.is_null() {
            return incomplete_pair("certificate_pem", "private_key_pem").into();
        }
        match adopted_pair(&config.private_key_pem, &config.certificate_pem) {
            Ok(Some(pair)) => set_from_pair!(plan, pair),
            Ok(None) => {}
            Err(d) => return d.into(),
        }
        *planned = plan.to_value();
        Diagnostics::new()
    }

    async fn create(&self, _ctx: &Context, planned: &Value) -> Outcome<Value> {
        let mut state = KeyModel::from_value(planned)?;
        let pair = match adopted_pair(&state.private_key_pem, &state.certificate_pem)? {
            Some(pair) => pair,
            None => {
                let opts = KeyOptions {
                    common_name: state.common_name.clone().unwrap_or_else(|| DEFAULT_COMMON_NAME.to_string()),
                    // The schema keeps it within 1..=36500.
                    validity_days: state.validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS) as u32,
                };
                tracing::info!(common_name = %opts.common_name, validity_days = opts.validity_days, "generating RSA-4096 sealing key");
                // RSA-4096 generation takes a while: keep it off the async workers.
                tokio::task::spawn_blocking(move || KeyPair::generate(&opts))
                    .await
                    .map_err(|e| Diagnostic::error("Key generation failed", e.to_string()))?
                    .map_err(|e| Diagnostic::error("Key generation failed", e.to_string()))?
            }
        };
        set_from_pair!(state, pair);
        tracing::info!(fingerprint = %pair.certificate().fingerprint(), "sealing key ready");
        Ok(state.to_value())
    }

    async fn read(&self, _ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        // The key exists only in Terraform's state: there is nothing remote to drift.
        Ok(Some(current.clone()))
    }

    async fn update(&self, _ctx: &Context, _prior: &Value, planned: &Value) -> Outcome<Value> {
        // Every configurable attribute forces replacement, so an update changes nothing.
        Ok(planned.clone())
    }

    async fn delete(&self, _ctx: &Context, prior: &Value) -> Outcome<()> {
        let prior = KeyModel::from_value(prior).ok();
        let fingerprint = prior.and_then(|p| p.fingerprint.known().cloned()).unwrap_or_else(|| "?".into());
        tracing::warn!(%fingerprint, "sealing key removed from state");
        Ok(())
    }

    async fn import(&self, _ctx: &Context, id: &str) -> Outcome<Value> {
        let text = std::fs::read_to_string(id).map_err(|e| {
            Diagnostic::error(
                "Cannot import sealing key",
                format!("The import ID is the path of a file holding the key and certificate PEM blocks (or a `kubectl get secret -o yaml` backup of the controller's key Secret); reading {id:?} failed: {e}"),
            )
        })?;
        let pair =
            import_pair(&text).map_err(|msg| Diagnostic::error("Cannot import sealing key", format!("{id}: {msg}")))?;
        let mut state = KeyModel {
            common_name: Some(DEFAULT_COMMON_NAME.to_string()),
            validity_days: Some(DEFAULT_VALIDITY_DAYS),
            ..Default::default()
        };
        set_from_pair!(state, pair);
        Ok(state.to_value())
    }
}

/// Finds the key pair in an import file: PEM blocks (the private key and its certificate, in
/// one file; the sealing library picks each block by its tag), or the controller's Secret backup.
fn import_pair(text: &str) -> Result<KeyPair, String> {
    if text.contains("-----BEGIN") {
        return KeyPair::from_pem(text, text).map_err(|e| e.to_string());
    }
    let mut keys = KeyPair::from_secret_backup(text).map_err(|e| e.to_string())?;
    match keys.len() {
        0 => Err("no sealing key Secret (data tls.key and tls.crt) found in the file".into()),
        1 => Ok(keys.remove(0)),
        n => Err(format!("the backup holds {n} sealing keys; import them one per resource from separate files")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<KeyModel>(&SealingKey::new().schema.block).unwrap();
    }
}
