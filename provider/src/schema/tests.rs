//! Plan-rule tests: each case is a (prior, proposed, config) triple as Terraform sends it.

use tf_cty::{Number, Path, Type, Value};

use super::*;

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

fn s(v: &str) -> Value {
    Value::string(v)
}

fn schema() -> Schema {
    Schema::new(
        1,
        Block::new("test")
            .attribute(Attribute::computed("id", Type::String))
            .attribute(Attribute::required("name", Type::String).force_new())
            .attribute(Attribute::optional("size", Type::Number))
            .attribute(Attribute::optional("mode", Type::String).default_value(s("fast")))
            .attribute(Attribute::optional_computed("mac", Type::String))
            .attribute(Attribute::computed("output", Type::String))
            .block(NestedBlock::new(
                "disk",
                Nesting::List,
                Block::new("disk")
                    .attribute(Attribute::required("volume", Type::String).force_new())
                    .attribute(Attribute::optional("bus", Type::String).default_value(s("virtio")))
                    .attribute(Attribute::computed("device", Type::String)),
            )),
    )
}

fn disk(volume: &str, bus: Value, device: Value) -> Value {
    obj(&[("volume", s(volume)), ("bus", bus), ("device", device)])
}

fn config(name: &str, size: Value, disks: Vec<Value>) -> Value {
    obj(&[
        ("id", Value::Null),
        ("name", s(name)),
        ("size", size),
        ("mode", Value::Null),
        ("mac", Value::Null),
        ("output", Value::Null),
        ("disk", Value::List(disks)),
    ])
}

#[test]
fn create_marks_unset_computed_unknown_and_applies_defaults() {
    let schema = schema();
    let cfg = config("a", Value::Number(Number::from_i64(3)), vec![disk("v1", Value::Null, Value::Null)]);
    // On create Terraform proposes the config as is.
    let planned = plan_resource_change(&schema, &Value::Null, &cfg, &cfg);
    assert_eq!(planned.get_attr("id"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("output"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("mac"), Some(&Value::Unknown));
    assert_eq!(planned.get_attr("mode"), Some(&s("fast")));
    assert_eq!(planned.get_attr("size"), Some(&Value::Number(Number::from_i64(3))));
    let Some(Value::List(disks)) = planned.get_attr("disk") else { panic!("disk list") };
    assert_eq!(disks[0], disk("v1", s("virtio"), Value::Unknown));
    check_plan_valid(&schema, &Value::Null, &cfg, &planned).unwrap();
    assert!(replace_paths(&schema, &Value::Null, &planned).is_empty(), "nothing is replaced on create");
}

fn applied_state() -> Value {
    obj(&[
        ("id", s("i-1")),
        ("name", s("a")),
        ("size", Value::Number(Number::from_i64(3))),
        ("mode", s("fast")),
        ("mac", s("52:54:00:00:00:01")),
        ("output", s("out")),
        ("disk", Value::List(vec![disk("v1", s("virtio"), s("vda"))])),
    ])
}

/// What Terraform's ProposedNewState does: config values, with prior values for computed
/// attributes the config leaves null.
fn proposed(prior: &Value, cfg: &Value) -> Value {
    fn merge(prior: &Value, cfg: &Value, computed: &[&str]) -> Value {
        let Value::Object(c) = cfg else { return cfg.clone() };
        Value::Object(
            c.iter()
                .map(|(k, v)| {
                    let keep = v.is_null() && computed.contains(&k.as_str());
                    (k.clone(), if keep { prior.get_attr(k).cloned().unwrap_or(Value::Null) } else { v.clone() })
                })
                .collect(),
        )
    }
    let mut top = merge(prior, cfg, &["id", "mode", "mac", "output"]);
    if let (Some(Value::List(pd)), Some(Value::List(cd))) = (prior.get_attr("disk"), cfg.get_attr("disk")) {
        let disks = cd
            .iter()
            .enumerate()
            .map(|(i, c)| merge(pd.get(i).unwrap_or(&Value::Null), c, &["bus", "device"]))
            .collect();
        if let Value::Object(m) = &mut top {
            m.insert("disk".into(), Value::List(disks));
        }
    }
    top
}

#[test]
fn unchanged_config_plans_exactly_the_prior_state() {
    let schema = schema();
    let prior = applied_state();
    let cfg = config("a", Value::Number(Number::from_i64(3)), vec![disk("v1", Value::Null, Value::Null)]);
    let planned = plan_resource_change(&schema, &prior, &proposed(&prior, &cfg), &cfg);
    assert_eq!(planned, prior, "no diff, computed values kept");
    assert!(replace_paths(&schema, &prior, &planned).is_empty());
    check_plan_valid(&schema, &prior, &cfg, &planned).unwrap();
}

#[test]
fn in_place_change_keeps_computed_values_and_needs_no_replacement() {
    let schema = schema();
    let prior = applied_state();
    let cfg = config("a", Value::Number(Number::from_i64(5)), vec![disk("v1", Value::Null, Value::Null)]);
    let planned = plan_resource_change(&schema, &prior, &proposed(&prior, &cfg), &cfg);
    assert_eq!(planned.get_attr("size"), Some(&Value::Number(Number::from_i64(5))));
    assert_eq!(planned.get_attr("id"), Some(&s("i-1")));
    assert!(replace_paths(&schema, &prior, &planned).is_empty());
    check_plan_valid(&schema, &prior, &cfg, &planned).unwrap();
}

#[test]
fn force_new_changes_are_reported_with_their_paths() {
    let schema = schema();
    let prior = applied_state();
    let cfg = config("b", Value::Number(Number::from_i64(3)), vec![disk("v2", Value::Null, Value::Null)]);
    let planned = plan_resource_change(&schema, &prior, &proposed(&prior, &cfg), &cfg);
    let paths = replace_paths(&schema, &prior, &planned);
    assert_eq!(paths, vec![Path::attr("name"), Path::attr("disk").join_index(0).join_attr("volume")]);
}

#[test]
fn unknown_force_new_value_forces_replacement() {
    let schema = schema();
    let prior = applied_state();
    let mut cfg = config("a", Value::Number(Number::from_i64(3)), vec![disk("v1", Value::Null, Value::Null)]);
    if let Value::Object(m) = &mut cfg {
        m.insert("name".into(), Value::Unknown);
    }
    let planned = plan_resource_change(&schema, &prior, &proposed(&prior, &cfg), &cfg);
    assert_eq!(replace_paths(&schema, &prior, &planned), vec![Path::attr("name")]);
}

#[test]
fn destroy_plans_null() {
    let schema = schema();
    let planned = plan_resource_change(&schema, &applied_state(), &Value::Null, &Value::Null);
    assert!(planned.is_null());
    assert!(replace_paths(&schema, &applied_state(), &planned).is_empty());
}

#[test]
fn invalid_plans_are_caught_before_terraform_sees_them() {
    let schema = schema();
    let cfg = config("a", Value::Number(Number::from_i64(3)), vec![]);
    let mut planned = plan_resource_change(&schema, &Value::Null, &cfg, &cfg);
    // A non-computed attribute planned differently from its config value.
    if let Value::Object(m) = &mut planned {
        m.insert("size".into(), Value::Number(Number::from_i64(4)));
    }
    let err = check_plan_valid(&schema, &Value::Null, &cfg, &planned).unwrap_err();
    assert!(err.contains("size"), "{err}");
    // A nested block that appears out of nowhere.
    let mut planned = plan_resource_change(&schema, &Value::Null, &cfg, &cfg);
    if let Value::Object(m) = &mut planned {
        m.insert("disk".into(), Value::List(vec![disk("x", s("virtio"), Value::Unknown)]));
    }
    assert!(check_plan_valid(&schema, &Value::Null, &cfg, &planned).is_err());
}

#[test]
fn validators_report_attribute_paths_inside_blocks() {
    let block = Block::new("t")
        .attribute(Attribute::optional("mode", Type::String).validate(one_of(&["a", "b"])))
        .block(NestedBlock::new(
            "disk",
            Nesting::List,
            Block::new("d").attribute(Attribute::optional("bus", Type::String).validate(one_of(&["virtio", "sata"]))),
        ));
    let cfg = obj(&[
        ("mode", s("c")),
        ("disk", Value::List(vec![obj(&[("bus", s("virtio"))]), obj(&[("bus", s("floppy"))])])),
    ]);
    let diags = validate_attributes(&block, &cfg);
    let paths: Vec<String> = diags.0.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
    assert_eq!(paths, vec!["mode", "disk[1].bus"]);
    assert!(diags.0[1].detail.contains("\"floppy\" is not one of: \"virtio\" or \"sata\""), "{}", diags.0[1].detail);
    // Unknown values are not judged yet.
    let cfg = obj(&[("mode", Value::Unknown), ("disk", Value::Unknown)]);
    assert!(validate_attributes(&block, &cfg).is_empty());
}

#[test]
fn implied_type_covers_attributes_and_blocks() {
    let ty = schema().value_type().clone();
    let Type::Object(attrs) = ty else { panic!() };
    assert_eq!(attrs["name"], Type::String);
    assert!(matches!(&attrs["disk"], Type::List(inner) if matches!(**inner, Type::Object(_))));
}

#[test]
fn an_unset_attribute_with_a_default_heals_drift_on_update() {
    let schema = schema();
    // Someone changed `mode` and a disk's `bus` outside Terraform; the configuration sets neither.
    let mut prior = applied_state();
    set(&mut prior, "mode", s("slow"));
    let drifted_disk = disk("v1", s("sata"), s("sda"));
    set(&mut prior, "disk", Value::List(vec![drifted_disk]));
    let cfg = config("a", Value::Number(Number::from_i64(3)), vec![disk("v1", Value::Null, Value::Null)]);
    // Terraform proposes the prior values for unset optional+computed attributes.
    let mut proposed = cfg.clone();
    for name in ["id", "mode", "mac", "output", "disk"] {
        set(&mut proposed, name, prior.get_attr(name).cloned().unwrap());
    }
    let planned = plan_resource_change(&schema, &prior, &proposed, &cfg);
    assert_eq!(planned.get_attr("mode"), Some(&s("fast")), "the default, not the drifted value");
    let Some(Value::List(disks)) = planned.get_attr("disk") else { panic!("disk list") };
    assert_eq!(disks[0].get_attr("bus"), Some(&s("virtio")));
    assert_eq!(planned.get_attr("mac"), prior.get_attr("mac"), "no default: the prior value stays");
    check_plan_valid(&schema, &prior, &cfg, &planned).unwrap();
}

fn set(target: &mut Value, name: &str, value: Value) {
    if let Value::Object(attrs) = target {
        attrs.insert(name.to_string(), value);
    }
}
