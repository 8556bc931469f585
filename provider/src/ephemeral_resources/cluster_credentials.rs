//! `kvm_cluster_credentials`: a kubeconfig with a fresh, short-lived client certificate signed by
//! the cluster's client CA, for the kubernetes or helm provider, never stored in state or plan.
//!
//! k3s cannot revoke a client certificate, so the credential is bounded by its lifetime alone:
//! `open` issues a certificate valid for `ttl`, there is nothing to renew (no renewal time is
//! set) and nothing to release on close. Both answer success.

use std::time::Duration;

use async_trait::async_trait;
use kvm_bootstrap::k3s::pki::{
    check_client_name, rfc3339, ClientCertRequest, ClusterPki, PkiBundle, PkiError, CLIENT_CERT_MAX_TTL,
    CLIENT_CERT_MIN_TTL,
};
use tf_cty::{Path, Type, Value};

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::model::{Field, Model};
use crate::resources::{Context, EphemeralResource, Opened, Outcome};
use crate::schema::{Attribute, Block, Schema, Validator};
use crate::units::{format_duration, parse_duration};

const DEFAULT_TTL: &str = "1h";
const DEFAULT_USER: &str = "system:admin";
const DEFAULT_GROUP: &str = "system:masters";

/// The `kvm_cluster_credentials` ephemeral resource type.
pub struct ClusterCredentials {
    schema: Schema,
}

impl Default for ClusterCredentials {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterCredentials {
    /// The ephemeral resource type with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "Short-lived credentials for a k3s cluster built from a `kvm_cluster_pki`: a kubeconfig with a fresh \
             client certificate, signed by the cluster's client CA, that expires after `ttl`. Made anew on every \
             plan and apply and never stored in state or plan: wire the kubernetes or helm provider with it \
             instead of a long-lived admin credential. Needs Terraform 1.10 or later.",
        )
        .attribute(
            Attribute::required("pki", Type::String)
                .sensitive()
                .describe("The cluster PKI bundle: `kvm_cluster_pki.NAME.bundle`. Its client CA signs the certificate."),
        )
        .attribute(
            Attribute::required("api_server_url", Type::String)
                .validate(server_url())
                .describe("The API server, `https://HOST[:PORT]`, e.g. `kvm_gitops_cluster.NAME.api_server_url`."),
        )
        .attribute(
            Attribute::optional("ttl", Type::String)
                .default_value(Value::string(DEFAULT_TTL))
                .validate(ttl())
                .describe(format!(
                    "How long the certificate is valid, e.g. `30m`, `1h`, `8h` (units `s`, `m`, `h`); default `{DEFAULT_TTL}`, \
                     from {} to {}. Never beyond the client CA's own expiry.",
                    format_duration(CLIENT_CERT_MIN_TTL),
                    format_duration(CLIENT_CERT_MAX_TTL)
                )),
        )
        .attribute(
            Attribute::optional("username", Type::String)
                .default_value(Value::string(DEFAULT_USER))
                .validate(client_name("user name"))
                .describe(format!(
                    "The Kubernetes user: the certificate's common name (CN). Default `{DEFAULT_USER}`, as k3s' own admin kubeconfig."
                )),
        )
        .attribute(
            Attribute::optional("groups", Type::list(Type::String))
                .default_value(Value::List(vec![Value::string(DEFAULT_GROUP)]))
                .validate(groups())
                .describe(format!(
                    "The Kubernetes groups: one organization (O) each. Default `[\"{DEFAULT_GROUP}\"]` (cluster admin, \
                     as k3s' own admin kubeconfig); `[]` for a user whose rights come only from RBAC bindings of `username`."
                )),
        )
        .attribute(
            Attribute::computed("kubeconfig", Type::String)
                .sensitive()
                .describe("A kubeconfig for `api_server_url` with the server CA and the new certificate and key embedded."),
        )
        .attribute(
            Attribute::computed("client_certificate_pem", Type::String)
                .describe("The new client certificate, PEM."),
        )
        .attribute(
            Attribute::computed("client_key_pem", Type::String)
                .sensitive()
                .describe("Its private key (ECDSA P-256, PEM `EC PRIVATE KEY`)."),
        )
        .attribute(
            Attribute::computed("cluster_ca_certificate_pem", Type::String)
                .describe("The API server's CA certificate, PEM: what clients trust."),
        )
        .attribute(
            Attribute::computed("client_ca_certificate_pem", Type::String)
                .describe("The client CA certificate, PEM: what signed the client certificate."),
        )
        .attribute(
            Attribute::computed("expires_at", Type::String)
                .describe("When the certificate expires, RFC 3339 in UTC, e.g. `2026-12-04T23:00:00Z`."),
        );
        ClusterCredentials { schema: Schema::new(0, block) }
    }
}

fn server_url() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => kvm_bootstrap::k3s::config::check_server_url(s).map_err(|e| e.to_string()),
        None => Err("expected a string such as \"https://10.17.3.10:6443\"".to_string()),
    }
}

/// A `ttl` text as a duration within the bounds.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| e.to_string())?;
    if d < CLIENT_CERT_MIN_TTL || d > CLIENT_CERT_MAX_TTL {
        return Err(format!(
            "{text:?} is out of range: a short-lived credential lasts from {} to {}.",
            format_duration(CLIENT_CERT_MIN_TTL),
            format_duration(CLIENT_CERT_MAX_TTL)
        ));
    }
    Ok(d)
}

fn ttl() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => parse_ttl(s).map(drop),
        None => Err("expected a string such as \"1h\"".to_string()),
    }
}

fn client_name(what: &'static str) -> impl Validator {
    move |v: &Value| match v.as_str() {
        Some(s) => check_client_name(what, s).map_err(|e| e.to_string()),
        None => Err("expected a string".to_string()),
    }
}

fn groups() -> impl Validator {
    |v: &Value| match v {
        Value::List(items) => {
            for item in items {
                match item.as_str() {
                    Some(s) => check_client_name("group", s).map_err(|e| e.to_string())?,
                    None => return Err("a group must be a string, not null.".to_string()),
                }
            }
            Ok(())
        }
        _ => Err("expected a list of strings".to_string()),
    }
}

/// Reads and checks the bundle: JSON of the right shape, certificates and keys that belong
/// together, and server and client CAs valid now.
fn pki(text: &str) -> Result<ClusterPki, Diagnostic> {
    let invalid = |detail: String| Diagnostic::attribute_error(Path::attr("pki"), "Invalid PKI bundle", detail);
    let bundle: PkiBundle = serde_json::from_str(text)
        .map_err(|e| invalid(format!("Expected the `bundle` attribute of a kvm_cluster_pki (JSON): {e}")))?;
    let pki = ClusterPki::from_bundle(&bundle).map_err(|e| invalid(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    pki.check_cas_valid_at(now).map_err(ca_problem)?;
    Ok(pki)
}

fn ca_problem(e: PkiError) -> Diagnostic {
    match e {
        PkiError::CaNotValid { .. } => Diagnostic::attribute_error(
            Path::attr("pki"),
            "Cluster CA not valid",
            format!("No usable credentials can come from this PKI: {e}."),
        ),
        other => Diagnostic::attribute_error(Path::attr("pki"), "Invalid PKI bundle", other.to_string()),
    }
}

crate::model! {
    /// A `kvm_cluster_credentials` configuration and result (`CredentialsPlan`: while planning).
    struct CredentialsModel / CredentialsPlan {
        pki: String,
        api_server_url: String,
        ttl: Option<String>,
        username: Option<String>,
        groups: Option<Vec<String>>,
        kubeconfig: Field<String>,
        client_certificate_pem: Field<String>,
        client_key_pem: Field<String>,
        cluster_ca_certificate_pem: Field<String>,
        client_ca_certificate_pem: Field<String>,
        expires_at: Field<String>,
    }
}

#[async_trait]
impl EphemeralResource for ClusterCredentials {
    fn type_name(&self) -> &'static str {
        "kvm_cluster_credentials"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(config) = CredentialsPlan::from_value(config) else { return diags };
        if let Some(text) = config.pki.known() {
            if let Err(d) = pki(text) {
                diags.push(d);
            }
        }
        diags
    }

    async fn open(&self, _ctx: &Context, config: &Value) -> Outcome<Opened> {
        let mut result = CredentialsModel::from_value(config)?;
        let pki = pki(&result.pki)?;
        let url = result.api_server_url.as_str();
        let ttl_text = result.ttl.clone().unwrap_or_else(|| DEFAULT_TTL.to_string());
        let ttl = parse_ttl(&ttl_text)
            .map_err(|e| Diagnostic::attribute_error(Path::attr("ttl"), "Invalid value for \"ttl\"", e))?;
        let request = ClientCertRequest {
            common_name: result.username.clone().unwrap_or_else(|| DEFAULT_USER.to_string()),
            organizations: result.groups.clone().unwrap_or_else(|| vec![DEFAULT_GROUP.to_string()]),
            ttl,
        };
        let credentials = pki.issue_client_cert(&request).map_err(|e| match e {
            PkiError::InvalidClientCert(reason) => {
                Diagnostic::error("Invalid client certificate request", format!("{reason}."))
            }
            other => ca_problem(other),
        })?;
        let kubeconfig = pki.kubeconfig_with(url, &credentials).map_err(|e| {
            Diagnostic::attribute_error(
                Path::attr("api_server_url"),
                "Invalid value for \"api_server_url\"",
                e.to_string(),
            )
        })?;
        let mut diagnostics = Diagnostics::new();
        if credentials.limited_by_ca() {
            diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                summary: "Credentials end with the client CA".into(),
                detail: format!(
                    "The cluster's client CA expires at {}, before the requested ttl of {ttl_text} runs out; the \
                     certificate ends then too. Rotate the cluster's CAs soon.",
                    credentials.not_after_rfc3339()
                ),
                attribute: Some(Path::attr("ttl")),
            });
        }
        tracing::info!(
            user = %request.common_name,
            groups = ?request.organizations,
            expires_at = %rfc3339(credentials.not_after()),
            certificate = ?credentials.cert(),
            "issued short-lived cluster credentials"
        );

        result.ttl = Some(ttl_text);
        result.username = Some(request.common_name.clone());
        result.groups = Some(request.organizations.clone());
        result.kubeconfig = Field::Known(kubeconfig);
        result.client_certificate_pem = Field::Known(credentials.cert().cert_pem().to_string());
        result.client_key_pem = Field::Known(credentials.cert().key_pem().to_string());
        result.cluster_ca_certificate_pem = Field::Known(pki.server_ca_pem().to_string());
        result.client_ca_certificate_pem = Field::Known(pki.client_ca_pem().to_string());
        result.expires_at = Field::Known(credentials.not_after_rfc3339());
        Ok(Opened { result: result.to_value(), private: None, diagnostics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<CredentialsModel>(&ClusterCredentials::new().schema.block).unwrap();
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86400)));
        assert!(parse_ttl("4m").unwrap_err().contains("out of range"));
        assert!(parse_ttl("25h").unwrap_err().contains("out of range"));
        assert!(parse_ttl("1d").unwrap_err().contains("not a duration"));
    }
}
