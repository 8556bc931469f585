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
fn a_required_attribute_set_to_null_is_missing() {
    let block = Block::new("t")
        .attribute(Attribute::required("values", Type::map(Type::String)))
        .attribute(Attribute::optional("labels", Type::map(Type::String)));
    let cfg = obj(&[("values", Value::Null), ("labels", Value::Null)]);
    let diags = validate_attributes(&block, &cfg);
    assert_eq!(diags.0.len(), 1);
    assert_eq!(diags.0[0].summary, "Missing required argument");
    assert_eq!(diags.0[0].attribute.as_ref().unwrap().to_string(), "values");
    assert!(validate_attributes(&block, &obj(&[("values", Value::Unknown), ("labels", Value::Null)])).is_empty());
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

/// A resource with a stored secret, its write-only twin and the twin's version, and a list
/// block holding a write-only attribute.
fn write_only_schema() -> Schema {
    Schema::new(
        0,
        Block::new("wo")
            .attribute(Attribute::computed("id", Type::String))
            .attribute(Attribute::optional("secret", Type::String).sensitive().prefer_write_only("secret_wo"))
            .attribute(Attribute::optional("secret_wo", Type::String).write_only().sensitive())
            .attribute(Attribute::optional("secret_wo_version", Type::Number).force_new())
            .block(NestedBlock::new(
                "repo",
                Nesting::List,
                Block::new("r")
                    .attribute(Attribute::required("url", Type::String))
                    .attribute(Attribute::optional("password_wo", Type::String).write_only()),
            )),
    )
}

fn wo_config(secret_wo: Value, version: i64, password_wo: Value) -> Value {
    obj(&[
        ("id", Value::Null),
        ("secret", Value::Null),
        ("secret_wo", secret_wo),
        ("secret_wo_version", Value::Number(Number::from_i64(version))),
        ("repo", Value::List(vec![obj(&[("url", s("https://git")), ("password_wo", password_wo)])])),
    ])
}

#[test]
fn write_only_values_are_planned_null_and_only_their_version_plans_a_change() {
    let schema = write_only_schema();
    assert!(schema.problems().is_empty(), "{:?}", schema.problems());
    // Terraform proposes the configuration, write-only values included.
    let cfg = wo_config(s("hunter2"), 1, s("tok"));
    let planned = plan_resource_change(&schema, &Value::Null, &cfg, &cfg);
    assert_eq!(planned.get_attr("secret_wo"), Some(&Value::Null));
    let Some(Value::List(repos)) = planned.get_attr("repo") else { panic!("repo list") };
    assert_eq!(repos[0].get_attr("password_wo"), Some(&Value::Null));
    assert_eq!(repos[0].get_attr("url"), Some(&s("https://git")));
    check_plan_valid(&schema, &Value::Null, &cfg, &planned).unwrap();

    // The applied state, and a new value with the same version: nothing to change.
    let mut state = planned.clone();
    set(&mut state, "id", s("x"));
    let cfg2 = wo_config(s("rotated"), 1, s("tok2"));
    let mut proposed = cfg2.clone();
    set(&mut proposed, "id", s("x"));
    let planned2 = plan_resource_change(&schema, &state, &proposed, &cfg2);
    assert_eq!(planned2, state, "a changed write-only value alone plans nothing");
    assert!(replace_paths(&schema, &state, &planned2).is_empty());
    // A new version does, and replaces.
    let cfg3 = wo_config(s("rotated"), 2, s("tok2"));
    let mut proposed = cfg3.clone();
    set(&mut proposed, "id", s("x"));
    let planned3 = plan_resource_change(&schema, &state, &proposed, &cfg3);
    assert_eq!(replace_paths(&schema, &state, &planned3), vec![Path::attr("secret_wo_version")]);

    // A plan carrying a write-only value is refused, as Terraform would.
    let mut leaky = planned.clone();
    set(&mut leaky, "secret_wo", s("hunter2"));
    let problem = check_plan_valid(&schema, &Value::Null, &cfg, &leaky).unwrap_err();
    assert!(problem.contains("write-only secret_wo"), "{problem}");
}

#[test]
fn create_sees_write_only_values_from_the_config_and_state_never_keeps_them() {
    let schema = write_only_schema();
    let cfg = wo_config(s("hunter2"), 1, s("tok"));
    let planned = plan_resource_change(&schema, &Value::Null, &cfg, &cfg);
    let merged = with_write_only(&schema.block, &planned, &cfg);
    assert_eq!(merged.get_attr("secret_wo"), Some(&s("hunter2")));
    let Some(Value::List(repos)) = merged.get_attr("repo") else { panic!("repo list") };
    assert_eq!(repos[0].get_attr("password_wo"), Some(&s("tok")));
    assert_eq!(merged.get_attr("id"), Some(&Value::Unknown), "everything else is the plan's");
    // A resource returning what it was given still stores no write-only value.
    let stripped = strip_write_only(&schema.block, &merged);
    assert_eq!(stripped, planned);
    assert_eq!(strip_write_only(&schema.block, &Value::Null), Value::Null);
}

#[test]
fn write_only_needs_a_terraform_that_announced_it() {
    let schema = write_only_schema();
    let cfg = wo_config(s("hunter2"), 1, Value::Unknown);
    // Terraform 1.0.3: no capability. Each set write-only attribute is an error at its path,
    // also while its value is unknown; the message names the Terraform version needed.
    let diags = check_write_only(&schema.block, &cfg, false);
    let paths: Vec<String> = diags.0.iter().map(|d| d.attribute.as_ref().unwrap().to_string()).collect();
    assert_eq!(paths, vec!["secret_wo", "repo[0].password_wo"]);
    assert!(diags.has_errors());
    let detail = &diags.0[0].detail;
    assert!(detail.contains("`secret_wo` is write-only and needs Terraform 1.11 or later"), "{detail}");
    assert!(detail.contains("Use `secret` or upgrade Terraform."), "{detail}");
    assert!(!diags.0.iter().any(|d| d.detail.contains("hunter2")), "the value is never echoed");
    // With the capability: fine.
    assert!(check_write_only(&schema.block, &cfg, true).is_empty());
    // Unset write-only attributes are fine on any Terraform; the stored twin draws a warning
    // only where write-only is possible.
    let mut stored = wo_config(Value::Null, 1, Value::Null);
    set(&mut stored, "secret", s("hunter2"));
    assert!(check_write_only(&schema.block, &stored, false).is_empty());
    let warned = check_write_only(&schema.block, &stored, true);
    assert_eq!(warned.0.len(), 1);
    assert!(!warned.has_errors());
    assert!(warned.0[0].detail.contains("`secret` is stored"), "{}", warned.0[0].detail);
    assert!(warned.0[0].detail.contains("`secret_wo`"), "{}", warned.0[0].detail);
    // Without a path, so Terraform does not quote the line that may hold a literal secret.
    assert_eq!(warned.0[0].attribute, None);
}

#[test]
fn write_only_declarations_terraform_forbids_are_problems_not_panics() {
    let bad = Schema::new(
        0,
        Block::new("bad")
            .attribute(Attribute::optional("a", Type::String).write_only().default_value(s("x")))
            .attribute(Attribute::optional("b", Type::String).write_only().force_new())
            .attribute(Attribute::optional("c", Type::String).prefer_write_only("nope"))
            .block(NestedBlock::new(
                "set",
                Nesting::Set,
                Block::new("s").attribute(Attribute::optional("d", Type::String).write_only()),
            )),
    );
    let problems = bad.problems().join("\n");
    for expected in [
        "a: a write-only attribute cannot be computed",
        "b: a write-only attribute cannot force",
        "c: its write-only twin",
        "set.d: set-nested",
    ] {
        assert!(problems.contains(expected), "{expected:?} not in:\n{problems}");
    }
    assert!(schema().problems().is_empty());
}
