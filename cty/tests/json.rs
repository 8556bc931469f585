//! JSON value codec (UpgradeResourceState's `raw_state.json`).

use tf_cty::{json, Number, Path, PathStep, Type, Value};

fn num(s: &str) -> Value {
    Value::Number(Number::parse(s).unwrap())
}

fn dec(text: &str, ty: &Type) -> Value {
    json::decode(text.as_bytes(), ty).unwrap()
}

fn enc(v: &Value, ty: &Type) -> String {
    String::from_utf8(json::encode(v, ty).unwrap()).unwrap()
}

fn state_type() -> Type {
    Type::object([
        ("id", Type::String),
        ("memory", Type::Number),
        ("ratio", Type::Number),
        ("running", Type::Bool),
        ("disk", Type::list(Type::object([("size", Type::Number), ("bus", Type::String)]))),
        ("tags", Type::map(Type::String)),
        ("nets", Type::set(Type::String)),
        ("pair", Type::Tuple(vec![Type::String, Type::Number])),
        ("added_in_v2", Type::String),
    ])
}

#[test]
fn decodes_raw_state_filling_new_attributes_with_null() {
    let raw = r#"{
        "id": "vm-1",
        "memory": 123456789012345678901234567890,
        "ratio": 0.1,
        "running": true,
        "disk": [ {"size": 1.5e-30, "bus": "virtio"}, {"bus": null} ],
        "tags": {"env": "prod", "quote\"d": "tab\there \u00e9"},
        "nets": [],
        "pair": ["x", -7]
    }"#;
    let v = dec(raw, &state_type());
    let expected = Value::object_from([
        ("id", Value::string("vm-1")),
        ("memory", num("123456789012345678901234567890")),
        ("ratio", num("0.1")),
        ("running", Value::Bool(true)),
        (
            "disk",
            Value::List(vec![
                Value::object_from([("size", num("1.5e-30")), ("bus", Value::string("virtio"))]),
                Value::object_from([("size", Value::Null), ("bus", Value::Null)]),
            ]),
        ),
        (
            "tags",
            Value::Map(
                [("env".to_owned(), Value::string("prod")), ("quote\"d".to_owned(), Value::string("tab\there é"))]
                    .into(),
            ),
        ),
        ("nets", Value::Set(vec![])),
        ("pair", Value::Tuple(vec![Value::string("x"), num("-7")])),
        ("added_in_v2", Value::Null),
    ]);
    assert_eq!(v, expected);
    // And back, exactly.
    assert_eq!(dec(&enc(&v, &state_type()), &state_type()), v);
}

#[test]
fn golden_encoding() {
    let ty = Type::object([("b", Type::String), ("a", Type::String)]);
    assert_eq!(enc(&Value::object_from([("a", Value::string("x"))]), &ty), r#"{"a":"x","b":null}"#);
    let ty = Type::object([
        ("n", Type::list(Type::Number)),
        ("s", Type::String),
        ("m", Type::map(Type::Bool)),
        ("t", Type::Tuple(vec![])),
    ]);
    let v = Value::object_from([
        ("n", Value::List(vec![num("1"), num("0.1"), num("-1.5e-30"), num("1e20"), num("1e300"), Value::Null])),
        ("s", Value::string("a\"b\\c\nd\u{1}é")),
        ("m", Value::Map([("k".to_owned(), Value::Bool(false))].into())),
        ("t", Value::Tuple(vec![])),
    ]);
    assert_eq!(
        enc(&v, &ty),
        r#"{"m":{"k":false},"n":[1,0.1,-0.0000000000000000000000000000015,100000000000000000000,1e+300,null],"s":"a\"b\\c\nd\u0001é","t":[]}"#
    );
    assert_eq!(dec(&enc(&v, &ty), &ty), v);
}

#[test]
fn dynamic_values() {
    let ty = Type::object([("d", Type::Dynamic)]);
    let inner_ty = Type::object([("a", Type::list(Type::String))]);
    let inner = Value::object_from([("a", Value::List(vec![Value::string("x")]))]);
    let v = Value::object_from([("d", Value::Dynamic(inner_ty.clone(), Box::new(inner.clone())))]);
    let text = enc(&v, &ty);
    assert_eq!(text, r#"{"d":{"value":{"a":["x"]},"type":["object",{"a":["list","string"]}]}}"#);
    assert_eq!(dec(&text, &ty), v);
    // Keys in the other order, with whitespace.
    let swapped = r#"{"d": { "type": ["object",{"a":["list","string"]}] , "value": {"a": ["x"]} }}"#;
    assert_eq!(dec(swapped, &ty), v);
    // Typed and untyped nulls.
    assert_eq!(dec(r#"{"d":null}"#, &ty), Value::object_from([("d", Value::Null)]));
    let typed_null = Value::Dynamic(Type::String, Box::new(Value::Null));
    assert_eq!(dec(r#"{"value":null,"type":"string"}"#, &Type::Dynamic), typed_null);
    assert_eq!(enc(&typed_null, &Type::Dynamic), r#"{"value":null,"type":"string"}"#);
    // Unwrapped values are sent with their implied type.
    assert_eq!(enc(&Value::string("x"), &Type::Dynamic), r#"{"value":"x","type":"string"}"#);
    // Malformed wrappers.
    for bad in [
        r#"{"value":1}"#,
        r#"{"type":"number"}"#,
        r#"{"value":1,"type":"number","x":2}"#,
        r#""x""#,
        r#"{"value":1,"type":"int"}"#,
    ] {
        assert!(json::decode(bad.as_bytes(), &Type::Dynamic).is_err(), "{bad}");
    }
}

#[test]
fn lenient_primitive_conversions_like_cty() {
    assert_eq!(dec(r#""12.50""#, &Type::Number), num("12.5"));
    assert_eq!(dec("12.50", &Type::String), Value::string("12.50"));
    assert_eq!(dec("true", &Type::String), Value::string("true"));
    assert_eq!(dec(r#""false""#, &Type::Bool), Value::Bool(false));
    assert!(json::decode(br#""yes""#, &Type::Bool).is_err());
    assert!(json::decode(br#""abc""#, &Type::Number).is_err());
    assert!(json::decode(b"[]", &Type::String).is_err());
}

#[test]
fn errors_carry_paths() {
    let ty = state_type();
    let err = json::decode(br#"{"tags": {"a": 1, "b": [true]}}"#, &ty).unwrap_err();
    assert_eq!(err.path, Path(vec![PathStep::Attr("tags".into()), PathStep::Key("b".into())]));
    assert!(err.to_string().starts_with(r#"tags["b"]: expected string, got array"#), "{err}");

    let err = json::decode(br#"{"disk": [{}, {"size": "big"}]}"#, &ty).unwrap_err();
    assert_eq!(err.to_string(), r#"disk[1].size: invalid number "big""#);

    let err = json::decode(br#"{"removed_attr": 1}"#, &ty).unwrap_err();
    assert_eq!(err.path, Path::attr("removed_attr"));

    let err = json::decode(br#"{"pair": ["x"]}"#, &ty).unwrap_err();
    assert!(err.message.contains("not enough tuple elements"), "{err}");
    let err = json::decode(br#"{"pair": ["x", 1, 2]}"#, &ty).unwrap_err();
    assert!(err.message.contains("too many tuple elements"), "{err}");

    for bad in ["", "{", r#"{"id": "x",}"#, r#"{"id" "x"}"#, "{} {}", r#"{"id": "\x"}"#, "[1, 2]", r#"{"memory": 01}"#]
    {
        assert!(json::decode(bad.as_bytes(), &ty).is_err(), "{bad}");
    }
    assert!(json::decode(b"\"\xff\"", &Type::String).is_err());
}

#[test]
fn encoding_errors() {
    let ty = Type::object([("a", Type::list(Type::String))]);
    let err =
        json::encode(&Value::object_from([("a", Value::List(vec![Value::Null, Value::Unknown]))]), &ty).unwrap_err();
    assert_eq!(err.path, Path(vec![PathStep::Attr("a".into()), PathStep::Index(1)]));
    assert!(err.message.contains("unknown"));
    assert!(json::encode(&Value::Unknown, &Type::Dynamic).is_err());
    assert!(json::encode(&num("inf"), &Type::Number).is_err());
    assert!(json::encode(&Value::object_from([("b", Value::Null)]), &ty).is_err());
    assert!(json::encode(&Value::Bool(true), &Type::String).is_err());
}

#[test]
fn deep_nesting_is_refused() {
    let ty = Type::Dynamic;
    let text = r#"{"value":"#.repeat(1000) + "null" + &r#","type":"dynamic"}"#.repeat(1000);
    assert!(json::decode(text.as_bytes(), &ty).is_err());
}
