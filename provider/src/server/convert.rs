//! Conversions between the provider's own types and tfplugin6 messages. This is the only
//! place that builds protobuf messages from schemas, values, paths and diagnostics.

use tf_cty::{Path, PathStep, Type, Value};
use tfplugin_proto::tfplugin6 as pb;

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::schema::{Block, Nesting, Presence, Schema};

/// Decodes a DynamicValue of type `ty`: msgpack when present, else JSON, else null
/// (Terraform reads an absent value as null, so we do too).
pub fn decode(value: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostic> {
    let Some(dv) = value else { return Ok(Value::Null) };
    let decoded = if !dv.msgpack.is_empty() {
        tf_cty::msgpack::decode(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        tf_cty::json::decode(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|e| Diagnostic::error("Invalid value from Terraform", format!("cannot decode {what}: {e}")))
}

/// Encodes `value` of type `ty` as msgpack.
pub fn encode(value: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostic> {
    tf_cty::msgpack::encode(value, ty)
        .map(|msgpack| pb::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::error("Provider produced an invalid value", format!("cannot encode {what}: {e}")))
}

/// A diagnostic as Terraform wants it.
pub fn diagnostic(d: Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error,
            Severity::Warning => pb::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary,
        detail: d.detail,
        attribute: d.attribute.as_ref().map(attribute_path),
    }
}

/// All diagnostics as Terraform wants them.
pub fn diagnostics(diags: Diagnostics) -> Vec<pb::Diagnostic> {
    diags.into_iter().map(diagnostic).collect()
}

/// A path as Terraform wants it.
pub fn attribute_path(path: &Path) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .0
            .iter()
            .map(|step| pb::attribute_path::Step {
                selector: Some(match step {
                    PathStep::Attr(name) => Selector::AttributeName(name.clone()),
                    PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

/// A schema as Terraform wants it. Only nested blocks and plain attributes are used:
/// Terraform 1.0.x crashes on protocol-6 nested attributes.
pub fn schema(schema: &Schema) -> pb::Schema {
    pb::Schema { version: schema.version, block: Some(block(&schema.block, schema.version)) }
}

fn block(b: &Block, version: i64) -> pb::schema::Block {
    pb::schema::Block {
        version,
        attributes: b
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.clone(),
                r#type: a.ty.to_json().into_bytes(),
                description: a.description.clone(),
                required: a.presence == Presence::Required,
                optional: matches!(a.presence, Presence::Optional | Presence::OptionalComputed),
                computed: a.is_computed(),
                sensitive: a.sensitive,
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: a.deprecated,
                write_only: a.write_only,
                ..Default::default()
            })
            .collect(),
        block_types: b
            .blocks
            .iter()
            .map(|nb| pb::schema::NestedBlock {
                type_name: nb.name.clone(),
                block: Some(block(&nb.block, version)),
                nesting: match nb.nesting {
                    Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                    Nesting::Group => pb::schema::nested_block::NestingMode::Group,
                    Nesting::List => pb::schema::nested_block::NestingMode::List,
                    Nesting::Set => pb::schema::nested_block::NestingMode::Set,
                    Nesting::Map => pb::schema::nested_block::NestingMode::Map,
                } as i32,
                min_items: nb.min_items,
                max_items: nb.max_items,
            })
            .collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecated,
        deprecation_message: String::new(),
    }
}
