//! The service driven with requests shaped as Terraform sends them.

use std::sync::Arc;

use async_trait::async_trait;
use tf_cty::{Type, Value};
use tfplugin_proto::tfplugin6 as pb;
use tfplugin_proto::tfplugin6::provider_server::Provider;
use tonic::Request;

use super::ProviderService;
use crate::resources::{Context, Outcome, Registry, Resource};
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
