//! The service driven with requests shaped as Terraform sends them.

use std::sync::Arc;

use async_trait::async_trait;
use tf_cty::{Type, Value};
use tfplugin_proto::tfplugin6 as pb;
use tfplugin_proto::tfplugin6::provider_server::Provider;
use tonic::Request;

use super::ProviderService;
use crate::registry::Registry;
use crate::resources::{Context, Outcome, Resource};
use crate::schema::{Attribute, Block, Schema};

/// A resource at schema version 2 whose version-1 state called `size` `size_gb`.
struct Versioned {
    schema: Schema,
}

impl Versioned {
    fn new() -> Self {
        Versioned {
            schema: Schema::new(
                2,
                Block::new("v")
                    .attribute(Attribute::computed("id", Type::String))
                    .attribute(Attribute::required("name", Type::String).force_new())
                    .attribute(Attribute::optional("size", Type::Number))
                    .attribute(Attribute::optional("added_in_v2", Type::String)),
            ),
        }
    }
}

#[async_trait]
impl Resource for Versioned {
    fn type_name(&self) -> &'static str {
        "test_versioned"
    }
    fn schema(&self) -> &Schema {
        &self.schema
    }
    async fn create(&self, _: &Context, planned: &Value) -> Outcome<Value> {
        let mut state = planned.clone();
        crate::resources::set_attr(&mut state, "id", Value::string("x1"));
        Ok(state)
    }
    async fn read(&self, _: &Context, current: &Value) -> Outcome<Option<Value>> {
        Ok(Some(current.clone()))
    }
    async fn update(&self, _: &Context, _: &Value, planned: &Value) -> Outcome<Value> {
        Ok(planned.clone())
    }
    async fn delete(&self, _: &Context, _: &Value) -> Outcome<()> {
        Ok(())
    }
    async fn import(&self, _: &Context, id: &str) -> Outcome<Value> {
        Ok(Value::Object(
            [
                ("id", Value::string(id)),
                ("name", Value::string(id)),
                ("size", Value::Null),
                ("added_in_v2", Value::Null),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ))
    }
    fn upgrade_state(
        &self,
        from_version: i64,
        mut state: serde_json::Value,
    ) -> Result<serde_json::Value, crate::diag::Diagnostic> {
        assert_eq!(from_version, 1);
        if let Some(obj) = state.as_object_mut() {
            if let Some(size) = obj.remove("size_gb") {
                obj.insert("size".into(), size);
            }
        }
        Ok(state)
    }
}

fn service() -> ProviderService {
    ProviderService::new(Registry::with(vec![Arc::new(Versioned::new())]))
}

fn ty() -> Type {
    Versioned::new().schema.value_type().clone()
}

async fn upgrade(version: i64, json: &str) -> pb::upgrade_resource_state::Response {
    service()
        .upgrade_resource_state(Request::new(pb::upgrade_resource_state::Request {
            type_name: "test_versioned".into(),
            version,
            raw_state: Some(pb::RawState { json: json.as_bytes().to_vec(), flatmap: Default::default() }),
        }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn same_version_state_is_decoded_and_missing_attributes_become_null() {
    let resp = upgrade(2, r#"{"id":"x1","name":"a","size":10}"#).await;
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    let value = tf_cty::msgpack::decode(&resp.upgraded_state.unwrap().msgpack, &ty()).unwrap();
    assert_eq!(value.get_attr("size").and_then(|v| v.as_number()).and_then(|n| n.to_i64()), Some(10));
    assert_eq!(value.get_attr("added_in_v2"), Some(&Value::Null));
}

#[tokio::test]
async fn older_state_is_migrated_by_the_resource() {
    let resp = upgrade(1, r#"{"id":"x1","name":"a","size_gb":7}"#).await;
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    let value = tf_cty::msgpack::decode(&resp.upgraded_state.unwrap().msgpack, &ty()).unwrap();
    assert_eq!(value.get_attr("size").and_then(|v| v.as_number()).and_then(|n| n.to_i64()), Some(7));
}

#[tokio::test]
async fn newer_or_corrupt_state_is_a_clear_error() {
    let resp = upgrade(3, r#"{"id":"x1"}"#).await;
    assert!(resp.diagnostics[0].detail.contains("upgrade the provider"), "{:?}", resp.diagnostics);
    let resp = upgrade(2, r#"{"id":"x1","bogus":1}"#).await;
    assert_eq!(resp.diagnostics[0].summary, "Corrupt state");
}

#[tokio::test]
async fn plan_and_apply_round_trip_through_msgpack() {
    let svc = service();
    let config = Value::Object(
        [("id", Value::Null), ("name", Value::string("a")), ("size", Value::Null), ("added_in_v2", Value::Null)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    let dv = |v: &Value| Some(pb::DynamicValue { msgpack: tf_cty::msgpack::encode(v, &ty()).unwrap(), json: vec![] });
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "test_versioned".into(),
            prior_state: dv(&Value::Null),
            proposed_new_state: dv(&config),
            config: dv(&config),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = tf_cty::msgpack::decode(&plan.planned_state.clone().unwrap().msgpack, &ty()).unwrap();
    assert_eq!(planned.get_attr("id"), Some(&Value::Unknown));
    let apply = svc
        .apply_resource_change(Request::new(pb::apply_resource_change::Request {
            type_name: "test_versioned".into(),
            prior_state: dv(&Value::Null),
            planned_state: plan.planned_state,
            config: dv(&config),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(apply.diagnostics.is_empty(), "{:?}", apply.diagnostics);
    let state = tf_cty::msgpack::decode(&apply.new_state.unwrap().msgpack, &ty()).unwrap();
    assert_eq!(state.get_attr("id"), Some(&Value::string("x1")));
    assert!(state.is_wholly_known());
}

#[tokio::test]
async fn unknown_types_and_import_answer_with_diagnostics() {
    let svc = service();
    let resp = svc
        .validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.diagnostics[0].summary, "Unknown resource type");
    let imported = svc
        .import_resource_state(Request::new(pb::import_resource_state::Request {
            type_name: "test_versioned".into(),
            id: "abc".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported_resources.len(), 1);
}

#[tokio::test]
async fn schema_marks_sensitive_and_uses_no_nested_attributes() {
    let svc = ProviderService::new(Registry::builtin());
    let schema = svc.get_provider_schema(Request::new(pb::get_provider_schema::Request {})).await.unwrap().into_inner();
    assert!(schema.provider.is_some(), "Terraform requires a provider schema");
    let key = schema.resource_schemas["kvm_sealing_key"].block.as_ref().unwrap();
    let private = key.attributes.iter().find(|a| a.name == "private_key_pem").unwrap();
    assert!(private.sensitive && private.optional && private.computed);
    let secret = schema.resource_schemas["kvm_sealed_secret"].block.as_ref().unwrap();
    assert!(secret.attributes.iter().find(|a| a.name == "values").unwrap().sensitive);
    for s in schema.resource_schemas.values() {
        assert!(s.block.as_ref().unwrap().attributes.iter().all(|a| a.nested_type.is_none()));
    }
}

#[tokio::test]
async fn stop_provider_cancels_operations_in_flight() {
    let svc = service();
    let ctx = svc.context();
    assert!(!ctx.cancel.is_cancelled());
    svc.stop_provider(Request::new(pb::stop_provider::Request {})).await.unwrap();
    assert!(ctx.cancel.is_cancelled(), "operations started before StopProvider see the cancellation");
    assert!(!svc.context().cancel.is_cancelled(), "later operations start afresh");
}

mod ephemeral {
    use kvm_bootstrap::k3s::pki::{ClusterPki, PkiOptions};

    use super::*;
    use crate::ephemeral_resources::cluster_credentials::ClusterCredentials;
    use crate::resources::EphemeralResource as _;

    fn ty() -> Type {
        ClusterCredentials::new().schema().value_type().clone()
    }

    fn config(pki: &str, ttl: Option<&str>) -> Value {
        let mut attrs: std::collections::BTreeMap<String, Value> =
            ClusterCredentials::new().schema().block.attributes.iter().map(|a| (a.name.clone(), Value::Null)).collect();
        attrs.insert("pki".into(), Value::string(pki));
        attrs.insert("api_server_url".into(), Value::string("https://10.17.3.10:6443"));
        if let Some(ttl) = ttl {
            attrs.insert("ttl".into(), Value::string(ttl));
        }
        Value::Object(attrs)
    }

    fn dv(v: &Value) -> Option<pb::DynamicValue> {
        Some(pb::DynamicValue { msgpack: tf_cty::msgpack::encode(v, &ty()).unwrap(), json: vec![] })
    }

    fn bundle(pki: &ClusterPki) -> String {
        serde_json::to_string(&pki.to_bundle()).unwrap()
    }

    fn builtin() -> ProviderService {
        ProviderService::new(Registry::builtin())
    }

    async fn open(svc: &ProviderService, config: &Value) -> pb::open_ephemeral_resource::Response {
        svc.open_ephemeral_resource(Request::new(pb::open_ephemeral_resource::Request {
            type_name: "kvm_cluster_credentials".into(),
            config: dv(config),
            client_capabilities: None,
        }))
        .await
        .unwrap()
        .into_inner()
    }

    async fn validate(svc: &ProviderService, config: &Value) -> pb::validate_ephemeral_resource_config::Response {
        svc.validate_ephemeral_resource_config(Request::new(pb::validate_ephemeral_resource_config::Request {
            type_name: "kvm_cluster_credentials".into(),
            config: dv(config),
        }))
        .await
        .unwrap()
        .into_inner()
    }

    fn attr_name(d: &pb::Diagnostic) -> Option<String> {
        use pb::attribute_path::step::Selector;
        match d.attribute.as_ref()?.steps.first()?.selector.as_ref()? {
            Selector::AttributeName(n) => Some(n.clone()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn advertised_in_metadata_and_schema() {
        let svc = builtin();
        let meta = svc.get_metadata(Request::new(pb::get_metadata::Request {})).await.unwrap().into_inner();
        let names: Vec<_> = meta.ephemeral_resources.iter().map(|e| e.type_name.as_str()).collect();
        assert_eq!(names, ["kvm_cluster_credentials"]);
        let schema =
            svc.get_provider_schema(Request::new(pb::get_provider_schema::Request {})).await.unwrap().into_inner();
        let block = schema.ephemeral_resource_schemas["kvm_cluster_credentials"].block.clone().unwrap();
        let attr = |n: &str| block.attributes.iter().find(|a| a.name == n).unwrap().clone();
        assert!(attr("pki").sensitive && attr("pki").required);
        assert!(attr("kubeconfig").sensitive && attr("kubeconfig").computed);
        assert!(attr("client_key_pem").sensitive);
        assert!(attr("ttl").optional && attr("ttl").computed);
        assert!(!schema.resource_schemas.contains_key("kvm_cluster_credentials"));
    }

    #[tokio::test]
    async fn open_issues_credentials_without_renewal_and_renew_close_succeed() {
        let svc = builtin();
        let pki = ClusterPki::generate("lab").unwrap();
        let cfg = config(&bundle(&pki), Some("30m"));
        assert!(validate(&svc, &cfg).await.diagnostics.is_empty());
        let resp = open(&svc, &cfg).await;
        assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
        assert!(resp.renew_at.is_none(), "a certificate cannot be renewed: no renew_at");
        assert!(resp.private.is_none());
        assert!(resp.deferred.is_none());
        let result = tf_cty::msgpack::decode(&resp.result.unwrap().msgpack, &ty()).unwrap();
        let s = |n: &str| result.get_attr(n).and_then(Value::as_str).unwrap_or_default().to_string();
        assert_eq!(s("ttl"), "30m");
        assert_eq!(s("username"), "system:admin");
        assert_eq!(result.get_attr("groups"), Some(&Value::List(vec![Value::string("system:masters")])));
        assert!(s("client_certificate_pem").starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(s("client_key_pem").starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert_ne!(s("client_key_pem"), pki.admin().key_pem(), "a fresh key, not the long-lived admin's");
        assert_eq!(s("cluster_ca_certificate_pem"), pki.server_ca_pem());
        assert_eq!(s("client_ca_certificate_pem"), pki.client_ca_pem());
        assert!(s("kubeconfig").contains("https://10.17.3.10:6443"));
        let expires = time::OffsetDateTime::parse(&s("expires_at"), &time::format_description::well_known::Rfc3339)
            .expect("expires_at is RFC 3339");
        let delta = (expires - time::OffsetDateTime::now_utc() - time::Duration::minutes(30)).abs();
        assert!(delta < time::Duration::minutes(1), "{expires}");
        assert!(s("expires_at").ends_with('Z'));
        assert!(result.is_wholly_known());

        let renew = svc
            .renew_ephemeral_resource(Request::new(pb::renew_ephemeral_resource::Request {
                type_name: "kvm_cluster_credentials".into(),
                private: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(renew.diagnostics.is_empty() && renew.renew_at.is_none());
        let close = svc
            .close_ephemeral_resource(Request::new(pb::close_ephemeral_resource::Request {
                type_name: "kvm_cluster_credentials".into(),
                private: Some(b"anything".to_vec()),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(close.diagnostics.is_empty());
    }

    #[tokio::test]
    async fn bad_bundles_and_settings_are_diagnostics_on_the_attribute() {
        let svc = builtin();
        for (cfg, attribute, summary) in [
            (config("not json", None), "pki", "Invalid PKI bundle"),
            (config(r#"{"cluster_name":"lab"}"#, None), "pki", "Invalid PKI bundle"),
            (config(&bundle(&ClusterPki::generate("lab").unwrap()), Some("2m")), "ttl", "Invalid value for \"ttl\""),
        ] {
            let v = validate(&svc, &cfg).await;
            assert_eq!(v.diagnostics.len(), 1, "{:?}", v.diagnostics);
            assert_eq!(v.diagnostics[0].summary, summary);
            assert_eq!(attr_name(&v.diagnostics[0]).as_deref(), Some(attribute));
            let o = open(&svc, &cfg).await;
            assert!(o.result.is_none());
            assert_eq!(o.diagnostics[0].summary, summary);
        }
        // An expired CA: told at validate and at open, with the date.
        let opts = PkiOptions { ca_validity_days: 1, admin_validity_days: 1 };
        let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
        let expired = bundle(&ClusterPki::generate_at("lab", &opts, past).unwrap());
        let cfg = config(&expired, None);
        for diags in [validate(&svc, &cfg).await.diagnostics, open(&svc, &cfg).await.diagnostics] {
            assert_eq!(diags[0].summary, "Cluster CA not valid");
            assert!(diags[0].detail.contains("client-ca certificate expired at"), "{}", diags[0].detail);
            assert_eq!(attr_name(&diags[0]).as_deref(), Some("pki"));
        }
        // A bad URL and a bad group name.
        let good = bundle(&ClusterPki::generate("lab").unwrap());
        let mut cfg = config(&good, None);
        crate::resources::set_attr(&mut cfg, "api_server_url", Value::string("http://x"));
        crate::resources::set_attr(&mut cfg, "groups", Value::List(vec![Value::string("ok"), Value::Null]));
        let v = validate(&svc, &cfg).await;
        let attrs: Vec<_> = v.diagnostics.iter().filter_map(attr_name).collect();
        assert_eq!(attrs, ["api_server_url", "groups"], "{:?}", v.diagnostics);
        crate::resources::set_attr(&mut cfg, "groups", Value::List(vec![Value::string("")]));
        assert!(validate(&svc, &cfg).await.diagnostics.iter().any(|d| d.detail.contains("1 to 64 characters")));
        // Unknown values are skipped at validate, and refused at open.
        let mut cfg = config(&good, None);
        crate::resources::set_attr(&mut cfg, "pki", Value::Unknown);
        assert!(validate(&svc, &cfg).await.diagnostics.is_empty());
        assert!(open(&svc, &cfg).await.result.is_none());
        // Unknown types.
        let resp = svc
            .close_ephemeral_resource(Request::new(pb::close_ephemeral_resource::Request {
                type_name: "kvm_nope".into(),
                private: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics[0].summary, "Unknown ephemeral resource type");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let pki = ClusterPki::generate("lab").unwrap();
        let creds = pki
            .issue_client_cert(&kvm_bootstrap::k3s::pki::ClientCertRequest::admin(std::time::Duration::from_secs(600)))
            .unwrap();
        let key_line = creds.cert().key_pem().lines().nth(1).unwrap().to_string();
        assert!(!format!("{creds:?}").contains(&key_line));
        assert!(!format!("{:?}", creds.cert()).contains(&key_line));
    }
}

/// A resource with a write-only secret: create records what it was given and returns it all as
/// the state, as a careless resource might.
struct Secretive {
    schema: Schema,
    seen: std::sync::Mutex<Option<Value>>,
}

impl Secretive {
    fn new() -> Self {
        Secretive {
            schema: Schema::new(
                0,
                Block::new("s")
                    .attribute(Attribute::computed("id", Type::String))
                    .attribute(Attribute::optional("secret_wo", Type::String).write_only().sensitive())
                    .attribute(Attribute::optional("secret_wo_version", Type::Number).force_new()),
            ),
            seen: std::sync::Mutex::new(None),
        }
    }
}

#[async_trait]
impl Resource for Secretive {
    fn type_name(&self) -> &'static str {
        "test_secretive"
    }
    fn schema(&self) -> &Schema {
        &self.schema
    }
    async fn create(&self, _: &Context, planned: &Value) -> Outcome<Value> {
        *self.seen.lock().unwrap() = planned.get_attr("secret_wo").cloned();
        let mut state = planned.clone();
        crate::resources::set_attr(&mut state, "id", Value::string("s1"));
        Ok(state)
    }
    async fn read(&self, _: &Context, current: &Value) -> Outcome<Option<Value>> {
        let mut state = current.clone();
        crate::resources::set_attr(&mut state, "secret_wo", Value::string("from-read"));
        Ok(Some(state))
    }
    async fn update(&self, _: &Context, _: &Value, planned: &Value) -> Outcome<Value> {
        Ok(planned.clone())
    }
    async fn delete(&self, _: &Context, _: &Value) -> Outcome<()> {
        Ok(())
    }
    async fn import(&self, _: &Context, id: &str) -> Outcome<Value> {
        Ok(Value::Object(
            [("id", Value::string(id)), ("secret_wo", Value::string("x")), ("secret_wo_version", Value::Null)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ))
    }
}

#[tokio::test]
async fn write_only_values_reach_create_but_no_plan_or_state() {
    let resource = Arc::new(Secretive::new());
    let svc = ProviderService::new(Registry::with(vec![resource.clone()]));
    let ty = resource.schema.value_type().clone();
    let dv = |v: &Value| Some(pb::DynamicValue { msgpack: tf_cty::msgpack::encode(v, &ty).unwrap(), json: vec![] });
    let decode = |d: Option<pb::DynamicValue>| tf_cty::msgpack::decode(&d.unwrap().msgpack, &ty).unwrap();
    let config = Value::Object(
        [
            ("id", Value::Null),
            ("secret_wo", Value::string("hunter2")),
            ("secret_wo_version", Value::Number(tf_cty::Number::from_i64(1))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );

    // Validate: Terraform 1.0.3 sends no client capabilities; 1.11 announces write-only.
    let validate = |caps: Option<pb::ClientCapabilities>| {
        svc.validate_resource_config(Request::new(pb::validate_resource_config::Request {
            type_name: "test_secretive".into(),
            config: dv(&config),
            client_capabilities: caps,
        }))
    };
    let old = validate(None).await.unwrap().into_inner();
    assert_eq!(old.diagnostics.len(), 1, "{:?}", old.diagnostics);
    let d = &old.diagnostics[0];
    assert_eq!(d.severity, pb::diagnostic::Severity::Error as i32);
    assert!(d.detail.contains("`secret_wo` is write-only and needs Terraform 1.11 or later"), "{}", d.detail);
    assert_eq!(d.attribute, Some(super::attribute_path(&tf_cty::Path::attr("secret_wo"))));
    let caps = pb::ClientCapabilities { write_only_attributes_allowed: true, ..Default::default() };
    let new = validate(Some(caps)).await.unwrap().into_inner();
    assert!(new.diagnostics.is_empty(), "{:?}", new.diagnostics);

    // Plan: the write-only value Terraform proposes is planned null.
    let plan = svc
        .plan_resource_change(Request::new(pb::plan_resource_change::Request {
            type_name: "test_secretive".into(),
            prior_state: dv(&Value::Null),
            proposed_new_state: dv(&config),
            config: dv(&config),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = decode(plan.planned_state.clone());
    assert_eq!(planned.get_attr("secret_wo"), Some(&Value::Null));
    assert_eq!(planned.get_attr("secret_wo_version"), config.get_attr("secret_wo_version"));

    // Apply: create sees the value from the config; the new state does not keep it.
    let apply = svc
        .apply_resource_change(Request::new(pb::apply_resource_change::Request {
            type_name: "test_secretive".into(),
            prior_state: dv(&Value::Null),
            planned_state: plan.planned_state,
            config: dv(&config),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(apply.diagnostics.is_empty(), "{:?}", apply.diagnostics);
    assert_eq!(*resource.seen.lock().unwrap(), Some(Value::string("hunter2")));
    let state = decode(apply.new_state.clone());
    assert_eq!(state.get_attr("secret_wo"), Some(&Value::Null));
    assert_eq!(state.get_attr("id"), Some(&Value::string("s1")));

    // Read and import never return one either.
    let read = svc
        .read_resource(Request::new(pb::read_resource::Request {
            type_name: "test_secretive".into(),
            current_state: apply.new_state,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decode(read.new_state).get_attr("secret_wo"), Some(&Value::Null));
    let imported = svc
        .import_resource_state(Request::new(pb::import_resource_state::Request {
            type_name: "test_secretive".into(),
            id: "s9".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decode(imported.imported_resources[0].state.clone()).get_attr("secret_wo"), Some(&Value::Null));
}

#[tokio::test]
async fn builtin_schemas_declare_write_only_twins_and_break_no_rule() {
    let svc = ProviderService::new(Registry::builtin());
    let schema = svc.get_provider_schema(Request::new(pb::get_provider_schema::Request {})).await.unwrap().into_inner();
    assert!(schema.diagnostics.is_empty(), "{:?}", schema.diagnostics);
    let attr =
        |block: &pb::schema::Block, name: &str| block.attributes.iter().find(|a| a.name == name).cloned().unwrap();
    let secret = schema.resource_schemas["kvm_sealed_secret"].block.clone().unwrap();
    let wo = attr(&secret, "values_wo");
    assert!(wo.write_only && wo.optional && !wo.computed && wo.sensitive);
    assert!(!attr(&secret, "values_wo_version").write_only);
    assert!(!attr(&secret, "values").write_only && !attr(&secret, "values").required);
    let cluster = schema.resource_schemas["kvm_gitops_cluster"].block.clone().unwrap();
    let repo = cluster.block_types.iter().find(|b| b.type_name == "repository").unwrap().block.clone().unwrap();
    for name in ["password_wo", "ssh_private_key_wo"] {
        let a = attr(&repo, name);
        assert!(a.write_only && a.sensitive && !a.computed, "{name}");
        assert!(!attr(&repo, &format!("{name}_version")).write_only);
    }
    let instance = schema.resource_schemas["kvm_instance"].block.clone().unwrap();
    let graphics = instance.block_types.iter().find(|b| b.type_name == "graphics").unwrap().block.clone().unwrap();
    let a = attr(&graphics, "password_wo");
    assert!(a.write_only && a.sensitive && !a.computed);
    assert!(!attr(&graphics, "password_wo_version").write_only);
    // Nothing else is write-only.
    let count = |b: &pb::schema::Block| b.attributes.iter().filter(|a| a.write_only).count();
    let total: usize = schema
        .resource_schemas
        .values()
        .map(|s| {
            let b = s.block.as_ref().unwrap();
            count(b) + b.block_types.iter().map(|n| count(n.block.as_ref().unwrap())).sum::<usize>()
        })
        .sum();
    assert_eq!(total, 4);
}

#[test]
fn the_provider_model_matches_its_schema() {
    crate::model::check::<super::ProviderModel>(&super::provider_schema().block).unwrap();
}
