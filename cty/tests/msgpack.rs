//! msgpack codec: golden bytes (as cty writes them), format thresholds, lenient decoding
//! and error reporting.

use std::collections::BTreeMap;

use tf_cty::{msgpack, Number, Path, PathStep, Type, Value};

fn num(s: &str) -> Value {
    Value::Number(Number::parse(s).unwrap())
}

fn enc(v: &Value, ty: &Type) -> Vec<u8> {
    msgpack::encode(v, ty).unwrap()
}

fn dec(bytes: &[u8], ty: &Type) -> Value {
    msgpack::decode(bytes, ty).unwrap()
}

fn round_trip(v: &Value, ty: &Type) {
    let bytes = enc(v, ty);
    assert_eq!(&dec(&bytes, ty), v, "bytes {bytes:02x?}");
}

fn map(entries: &[(&str, Value)]) -> BTreeMap<String, Value> {
    entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn golden_primitives() {
    assert_eq!(enc(&Value::Unknown, &Type::String), [0xd4, 0x00, 0x00]);
    assert_eq!(enc(&Value::Null, &Type::String), [0xc0]);
    assert_eq!(enc(&Value::Bool(true), &Type::Bool), [0xc3]);
    assert_eq!(enc(&Value::Bool(false), &Type::Bool), [0xc2]);
    assert_eq!(enc(&Value::string("x"), &Type::String), [0xa1, b'x']);
    assert_eq!(enc(&num("0.1"), &Type::Number), [0xa3, b'0', b'.', b'1']);
    assert_eq!(enc(&num("0.5"), &Type::Number), [0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(enc(&num("-1.5"), &Type::Number), [0xcb, 0xbf, 0xf8, 0, 0, 0, 0, 0, 0]);
    // cty sends any value exactly representable as a float64 as one, integers beyond
    // int64 included (big.Float.Int64 inexact, Float64 exact).
    assert_eq!(enc(&num("1e20"), &Type::Number), [0xcb, 0x44, 0x15, 0xaf, 0x1d, 0x78, 0xb5, 0x8c, 0x40]);
    assert_eq!(enc(&num("9223372036854775808"), &Type::Number), [0xcb, 0x43, 0xe0, 0, 0, 0, 0, 0, 0]);
    let big = "123456789012345678901234567890";
    let mut expected = vec![0xa0 | 30];
    expected.extend_from_slice(big.as_bytes());
    assert_eq!(enc(&num(big), &Type::Number), expected);
    let mut expected = vec![0xa0 | 20];
    expected.extend_from_slice(b"18446744073709551615");
    assert_eq!(enc(&Value::Number(Number::from_u64(u64::MAX)), &Type::Number), expected);
    assert_eq!(enc(&num("inf"), &Type::Number), [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(enc(&num("-inf"), &Type::Number), [0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn golden_integers_use_the_smallest_form() {
    let cases: &[(i64, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7f]),
        (128, &[0xcc, 0x80]),
        (255, &[0xcc, 0xff]),
        (256, &[0xcd, 0x01, 0x00]),
        (65535, &[0xcd, 0xff, 0xff]),
        (65536, &[0xce, 0x00, 0x01, 0x00, 0x00]),
        (4294967295, &[0xce, 0xff, 0xff, 0xff, 0xff]),
        (4294967296, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
        (i64::MAX, &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (-1, &[0xff]),
        (-32, &[0xe0]),
        (-33, &[0xd0, 0xdf]),
        (-128, &[0xd0, 0x80]),
        (-129, &[0xd1, 0xff, 0x7f]),
        (-32768, &[0xd1, 0x80, 0x00]),
        (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
        (i64::from(i32::MIN), &[0xd2, 0x80, 0, 0, 0]),
        (i64::from(i32::MIN) - 1, &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]),
        (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (i, bytes) in cases {
        let v = Value::Number(Number::from_i64(*i));
        assert_eq!(enc(&v, &Type::Number), *bytes, "{i}");
        assert_eq!(dec(bytes, &Type::Number), v, "{i}");
    }
}

#[test]
fn golden_object_sorted_with_nulls_for_missing_attributes() {
    let ty = Type::object([("b", Type::String), ("a", Type::String)]);
    let v = Value::object_from([("a", Value::string("x"))]);
    let bytes = enc(&v, &ty);
    assert_eq!(bytes, [0x82, 0xa1, b'a', 0xa1, b'x', 0xa1, b'b', 0xc0]);
    assert_eq!(dec(&bytes, &ty), Value::object_from([("a", Value::string("x")), ("b", Value::Null)]));
}

#[test]
fn golden_collections() {
    let list = Type::list(Type::String);
    assert_eq!(enc(&Value::List(vec![Value::string("a")]), &list), [0x91, 0xa1, b'a']);
    assert_eq!(enc(&Value::List(vec![]), &list), [0x90]);
    let m = Type::map(Type::Number);
    assert_eq!(enc(&Value::Map(map(&[("k", num("1"))])), &m), [0x81, 0xa1, b'k', 0x01]);
    let tuple = Type::Tuple(vec![Type::Bool, Type::String]);
    assert_eq!(enc(&Value::Tuple(vec![Value::Bool(true), Value::Unknown]), &tuple), [0x92, 0xc3, 0xd4, 0, 0]);
}

#[test]
fn golden_dynamic() {
    let v = Value::Dynamic(Type::String, Box::new(Value::string("x")));
    let mut expected = vec![0x92, 0xc4, 8];
    expected.extend_from_slice(b"\"string\"");
    expected.extend_from_slice(&[0xa1, b'x']);
    assert_eq!(enc(&v, &Type::Dynamic), expected);
    assert_eq!(dec(&expected, &Type::Dynamic), v);
    // Wholly unknown and untyped null stay bare.
    assert_eq!(enc(&Value::Unknown, &Type::Dynamic), [0xd4, 0, 0]);
    assert_eq!(enc(&Value::Null, &Type::Dynamic), [0xc0]);
    assert_eq!(dec(&[0xd4, 0, 0], &Type::Dynamic), Value::Unknown);
    assert_eq!(dec(&[0xc0], &Type::Dynamic), Value::Null);
    // A typed null keeps its type.
    let typed_null = Value::Dynamic(Type::Number, Box::new(Value::Null));
    let bytes = enc(&typed_null, &Type::Dynamic);
    assert_eq!(bytes[bytes.len() - 1], 0xc0);
    assert_eq!(dec(&bytes, &Type::Dynamic), typed_null);
    assert!(dec(&bytes, &Type::Dynamic).is_null());
    // Type JSON may also come as str.
    let mut as_str = vec![0x92, 0xa8];
    as_str.extend_from_slice(b"\"string\"");
    as_str.extend_from_slice(&[0xa1, b'x']);
    assert_eq!(dec(&as_str, &Type::Dynamic), v);
}

#[test]
fn dynamic_wrapping_an_object_and_implied_types() {
    let inner_ty = Type::object([("name", Type::String), ("tags", Type::map(Type::String)), ("n", Type::Number)]);
    let inner = Value::object_from([
        ("name", Value::string("vm")),
        ("tags", Value::Map(map(&[("env", Value::string("prod"))]))),
        ("n", Value::Unknown),
    ]);
    let outer_ty = Type::object([("id", Type::String), ("extra", Type::Dynamic)]);
    let v = Value::object_from([
        ("id", Value::string("1")),
        ("extra", Value::Dynamic(inner_ty.clone(), Box::new(inner.clone()))),
    ]);
    round_trip(&v, &outer_ty);
    let bytes = enc(&v, &outer_ty);
    let json = inner_ty.to_json();
    assert!(bytes.windows(json.len()).any(|w| w == json.as_bytes()));

    // An unwrapped value under dynamic is sent with its implied type.
    let plain = Value::object_from([("extra", inner.clone()), ("id", Value::Null)]);
    let decoded = dec(&enc(&plain, &outer_ty), &outer_ty);
    let implied = Type::object([("name", Type::String), ("tags", Type::map(Type::String)), ("n", Type::Dynamic)]);
    assert_eq!(decoded.get_attr("extra"), Some(&Value::Dynamic(implied, Box::new(inner))));
    // ... unless it has none.
    let mixed = Value::List(vec![Value::string("a"), Value::Bool(true)]);
    assert!(msgpack::encode(&mixed, &Type::Dynamic).is_err());
    // `["dynamic", x]` is just x.
    assert_eq!(
        dec(&[0x92, 0xc4, 9, b'"', b'd', b'y', b'n', b'a', b'm', b'i', b'c', b'"', 0xc0], &Type::Dynamic),
        Value::Null
    );
}

#[test]
fn nested_block_shapes() {
    let disk = Type::object([
        ("size", Type::Number),
        ("bus", Type::String),
        ("opts", Type::set(Type::object([("k", Type::String), ("v", Type::String)]))),
        ("labels", Type::map(Type::String)),
    ]);
    let ty = Type::object([
        ("id", Type::String),
        ("disk", Type::list(disk)),
        ("net", Type::set(Type::object([("mac", Type::String)]))),
        ("meta", Type::map(Type::list(Type::Number))),
        ("pair", Type::Tuple(vec![Type::String, Type::Bool])),
        ("enabled", Type::Bool),
    ]);
    let opt = |k: &str, v: Value| Value::object_from([("k", Value::string(k)), ("v", v)]);
    let v = Value::object_from([
        ("id", Value::Unknown),
        (
            "disk",
            Value::List(vec![
                Value::object_from([
                    ("size", num("10737418240")),
                    ("bus", Value::string("virtio")),
                    ("opts", Value::Set(vec![opt("cache", Value::string("none")), opt("io", Value::Null)])),
                    ("labels", Value::Map(map(&[("a", Value::Null), ("b", Value::Unknown), ("c", Value::string(""))]))),
                ]),
                Value::object_from([
                    ("size", Value::Null),
                    ("bus", Value::Null),
                    ("opts", Value::Set(vec![])),
                    ("labels", Value::Null),
                ]),
                Value::Unknown,
                Value::Null,
            ]),
        ),
        ("net", Value::Set(vec![])),
        (
            "meta",
            Value::Map(map(&[
                ("x", Value::List(vec![num("0.1"), num("-7"), Value::Null])),
                ("y", Value::List(vec![])),
            ])),
        ),
        ("pair", Value::Tuple(vec![Value::string("p"), Value::Null])),
        ("enabled", Value::Bool(false)),
    ]);
    round_trip(&v, &ty);
    round_trip(&Value::Null, &ty);
    round_trip(&Value::Unknown, &ty);
    round_trip(&Value::Map(BTreeMap::new()), &Type::map(Type::String));
}

fn str_header(len: usize) -> Vec<u8> {
    let bytes = enc(&Value::String("x".repeat(len)), &Type::String);
    assert_eq!(bytes.len() - len, bytes.len() - len);
    bytes[..bytes.len() - len].to_vec()
}

#[test]
fn string_length_thresholds() {
    assert_eq!(str_header(0), [0xa0]);
    assert_eq!(str_header(31), [0xbf]);
    assert_eq!(str_header(32), [0xd9, 32]);
    assert_eq!(str_header(255), [0xd9, 0xff]);
    assert_eq!(str_header(256), [0xda, 0x01, 0x00]);
    assert_eq!(str_header(65535), [0xda, 0xff, 0xff]);
    assert_eq!(str_header(65536), [0xdb, 0x00, 0x01, 0x00, 0x00]);
    for len in [0, 31, 32, 255, 256, 65535, 65536, 70000] {
        round_trip(&Value::String("é".repeat(len / 2) + &"z".repeat(len % 2)), &Type::String);
    }
}

#[test]
fn array_and_map_length_thresholds() {
    let list_ty = Type::list(Type::Bool);
    let map_ty = Type::map(Type::Bool);
    for (len, list_header, map_header) in [
        (0usize, vec![0x90], vec![0x80]),
        (15, vec![0x9f], vec![0x8f]),
        (16, vec![0xdc, 0x00, 0x10], vec![0xde, 0x00, 0x10]),
        (65535, vec![0xdc, 0xff, 0xff], vec![0xde, 0xff, 0xff]),
        (65536, vec![0xdd, 0x00, 0x01, 0x00, 0x00], vec![0xdf, 0x00, 0x01, 0x00, 0x00]),
    ] {
        let list = Value::List(vec![Value::Bool(true); len]);
        let bytes = enc(&list, &list_ty);
        assert_eq!(&bytes[..list_header.len()], &list_header[..], "list {len}");
        assert_eq!(bytes.len(), list_header.len() + len);
        assert_eq!(dec(&bytes, &list_ty), list);

        let m = Value::Map((0..len).map(|i| (format!("{i:06}"), Value::Bool(false))).collect());
        let bytes = enc(&m, &map_ty);
        assert_eq!(&bytes[..map_header.len()], &map_header[..], "map {len}");
        assert_eq!(dec(&bytes, &map_ty), m);
    }
    // Sets and objects use the same headers.
    let set = Value::Set(vec![Value::Null; 16]);
    assert_eq!(&enc(&set, &Type::set(Type::Bool))[..3], [0xdc, 0x00, 0x10]);
    let attrs: Vec<(String, Type)> = (0..16).map(|i| (format!("a{i:02}"), Type::Bool)).collect();
    let obj_ty = Type::object(attrs);
    let bytes = enc(&Value::Object(BTreeMap::new()), &obj_ty);
    assert_eq!(&bytes[..3], [0xde, 0x00, 0x10]);
}

#[test]
fn decodes_every_number_form() {
    let n = |bytes: &[u8]| dec(bytes, &Type::Number);
    assert_eq!(n(&[0x05]), num("5"));
    assert_eq!(n(&[0xfb]), num("-5"));
    assert_eq!(n(&[0xcc, 0xc8]), num("200"));
    assert_eq!(n(&[0xcd, 0x12, 0x34]), num("4660"));
    assert_eq!(n(&[0xce, 0xff, 0xff, 0xff, 0xff]), num("4294967295"));
    assert_eq!(n(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), num("18446744073709551615"));
    assert_eq!(n(&[0xd0, 0x80]), num("-128"));
    assert_eq!(n(&[0xd1, 0x80, 0x00]), num("-32768"));
    assert_eq!(n(&[0xd2, 0x80, 0, 0, 0]), num("-2147483648"));
    assert_eq!(n(&[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]), num("-2"));
    // Unsigned forms holding small values (some encoders always use them).
    assert_eq!(n(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 7]), num("7"));
    assert_eq!(n(&[0xca, 0x3f, 0xc0, 0x00, 0x00]), num("1.5"));
    assert_eq!(n(&[0xca, 0x3d, 0xcc, 0xcc, 0xcd]), Value::Number(Number::from_f64(f64::from(0.1f32))));
    assert_eq!(n(&[0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]), Value::Number(Number::from_f64(0.1)));
    assert_eq!(n(&[0xcb, 0x40, 0x14, 0, 0, 0, 0, 0, 0]), num("5"));
    assert_eq!(n(&[0xa3, b'0', b'.', b'1']), num("0.1"));
    assert_eq!(n(&[0xa6, b'1', b'.', b'5', b'e', b'-', b'3']), num("0.0015"));
    assert_eq!(n(&[0xc4, 0x02, b'4', b'2']), num("42"));
    assert!(msgpack::decode(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], &Type::Number).is_err(), "NaN");
    assert!(msgpack::decode(&[0xa3, b'a', b'b', b'c'], &Type::Number).is_err());
    assert!(msgpack::decode(&[0xc3], &Type::Number).is_err());
    // Exact round trips for numbers in each encoding.
    for s in ["0", "-1", "1e20", "0.1", "0.5", "3.14159", "1e-300", "123456789012345678901234567890.000001", "-inf"] {
        round_trip(&num(s), &Type::Number);
    }
}

#[test]
fn any_extension_is_unknown() {
    let ty = Type::object([("a", Type::String), ("b", Type::list(Type::Number))]);
    let exts: &[&[u8]] = &[
        &[0xd4, 0x00, 0x00],
        &[0xd4, 0x0c, 0x00],
        &[0xd5, 0x0c, 0x81, 0x01],
        &[0xd6, 0x05, 1, 2, 3, 4],
        &[0xd7, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0xd8, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xab, b'p', b'r', b'e', b'f', b'i', b'x', b'-', b'1', b'2', b'3', b'4'],
        // Refined unknown "not null" (ext 12 with payload {1: false}), as ext8.
        &[0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc2],
        &[0xc7, 0x00, 0x0c],
        &[0xc8, 0x00, 0x03, 0x0c, 0x81, 0x01, 0xc2],
        &[0xc9, 0x00, 0x00, 0x00, 0x03, 0x0c, 0x81, 0x01, 0xc2],
    ];
    for ext in exts {
        assert_eq!(dec(ext, &Type::String), Value::Unknown, "{ext:02x?}");
        assert_eq!(dec(ext, &Type::Dynamic), Value::Unknown);
        assert_eq!(dec(ext, &ty), Value::Unknown);
        // Inside a collection.
        let mut list = vec![0x92];
        list.extend_from_slice(ext);
        list.push(0x07);
        assert_eq!(dec(&list, &Type::list(Type::Number)), Value::List(vec![Value::Unknown, num("7")]));
        // Truncated extensions are errors, not panics.
        assert!(msgpack::decode(&ext[..ext.len() - 1], &Type::String).is_err());
    }
}

#[test]
fn object_decoding_is_lenient_about_missing_and_order() {
    let ty = Type::object([("a", Type::Number), ("b", Type::Number), ("c", Type::Number)]);
    let full = Value::object_from([("a", num("1")), ("b", num("2")), ("c", num("3"))]);
    // Out of order.
    assert_eq!(dec(&[0x83, 0xa1, b'c', 3, 0xa1, b'a', 1, 0xa1, b'b', 2], &ty), full);
    // Missing attributes are null.
    let expected = Value::object_from([("a", Value::Null), ("b", num("2")), ("c", Value::Null)]);
    assert_eq!(dec(&[0x81, 0xa1, b'b', 2], &ty), expected);
    assert_eq!(dec(&[0x80], &ty), Value::object_from([("a", Value::Null), ("b", Value::Null), ("c", Value::Null)]));
    let expected = Value::object_from([("a", num("1")), ("b", Value::Null), ("c", num("3"))]);
    assert_eq!(dec(&[0x82, 0xa1, b'c', 3, 0xa1, b'a', 1], &ty), expected);
    assert_eq!(dec(&[0x82, 0xa1, b'a', 1, 0xa1, b'c', 3], &ty), expected);
    // Keys may come as bin.
    assert_eq!(
        dec(&[0x81, 0xc4, 1, b'b', 2], &ty),
        Value::object_from([("a", Value::Null), ("b", num("2")), ("c", Value::Null)])
    );
}

#[test]
fn errors_carry_paths() {
    let ty =
        Type::object([("values", Type::map(Type::String)), ("list", Type::list(Type::object([("x", Type::Bool)])))]);
    // values = {"x": 1}
    let bytes = [0x81, 0xa6, b'v', b'a', b'l', b'u', b'e', b's', 0x81, 0xa1, b'x', 0x01];
    let err = msgpack::decode(&bytes, &ty).unwrap_err();
    assert_eq!(err.path, Path(vec![PathStep::Attr("values".into()), PathStep::Key("x".into())]));
    assert_eq!(err.to_string(), r#"values["x"]: expected string, got integer"#);

    // list = [{x = true}, {x = "no"}]
    let bytes = [0x81, 0xa4, b'l', b'i', b's', b't', 0x92, 0x81, 0xa1, b'x', 0xc3, 0x81, 0xa1, b'x', 0xa2, b'n', b'o'];
    let err = msgpack::decode(&bytes, &ty).unwrap_err();
    assert_eq!(err.to_string(), "list[1].x: expected bool, got string");

    // Unknown attribute.
    let err = msgpack::decode(&[0x81, 0xa1, b'z', 0xc0], &ty).unwrap_err();
    assert_eq!(err.path, Path::attr("z"));
    assert!(err.message.contains("unsupported attribute"), "{err}");

    // Duplicate attribute (out-of-order path).
    let err = msgpack::decode(
        &[
            0x83, 0xa4, b'l', b'i', b's', b't', 0xc0, 0xa6, b'v', b'a', b'l', b'u', b'e', b's', 0xc0, 0xa4, b'l', b'i',
            b's', b't', 0xc0,
        ],
        &ty,
    );
    assert!(err.unwrap_err().message.contains("duplicate"));

    // Invalid UTF-8.
    let err = msgpack::decode(&[0xa2, 0xc3, 0x28], &Type::String).unwrap_err();
    assert!(err.message.contains("UTF-8"), "{err}");
    assert!(err.path.is_root());
    assert_eq!(err.to_string(), err.message);

    // Wrong shapes at the root.
    assert!(msgpack::decode(&[0x90], &ty).unwrap_err().message.contains("expected object"));
    assert!(msgpack::decode(&[0x92, 0xc3, 0xc3], &Type::Tuple(vec![Type::Bool])).is_err());
    assert!(msgpack::decode(&[0xc1], &Type::Bool).is_err());
    assert!(msgpack::decode(&[], &Type::Bool).is_err());
    assert!(msgpack::decode(&[0xc3, 0xc3], &Type::Bool).unwrap_err().message.contains("after the value"));
    // Lengths the input cannot hold are refused before allocating.
    assert!(msgpack::decode(&[0xdd, 0xff, 0xff, 0xff, 0xff], &Type::list(Type::Bool)).is_err());
    assert!(msgpack::decode(&[0xdf, 0xff, 0xff, 0xff, 0xff], &Type::map(Type::Bool)).is_err());
    assert!(msgpack::decode(&[0xdb, 0xff, 0xff, 0xff, 0xff], &Type::String).is_err());
    // Bad dynamic wrappers.
    assert!(msgpack::decode(&[0x91, 0xc0], &Type::Dynamic).is_err());
    assert!(msgpack::decode(&[0x92, 0xc4, 0x03, b'"', b'x', b'"', 0xc0], &Type::Dynamic)
        .unwrap_err()
        .message
        .contains("type JSON"));
    assert!(msgpack::decode(&[0xa1, b'x'], &Type::Dynamic).is_err());
}

#[test]
fn truncated_input_is_an_error_not_a_panic() {
    let ty = Type::object([
        ("s", Type::String),
        ("n", Type::list(Type::Number)),
        ("d", Type::Dynamic),
        ("m", Type::map(Type::Bool)),
    ]);
    let v = Value::object_from([
        ("s", Value::string("x".repeat(300))),
        ("n", Value::List(vec![num("1"), num("0.1"), num("1e20"), num("-100000"), num("65536")])),
        ("d", Value::Dynamic(Type::list(Type::String), Box::new(Value::List(vec![Value::string("a")])))),
        ("m", Value::Map(map(&[("k", Value::Bool(true))]))),
    ]);
    let bytes = enc(&v, &ty);
    for cut in 0..bytes.len() {
        assert!(msgpack::decode(&bytes[..cut], &ty).is_err(), "prefix {cut}");
    }
}

#[test]
fn deep_dynamic_nesting_is_refused() {
    // [list(dynamic), [[list(dynamic), [ ... ]]]] nested far beyond any real value.
    let tj = br#"["list","dynamic"]"#;
    let mut bytes = Vec::new();
    for _ in 0..2000 {
        bytes.extend_from_slice(&[0x92, 0xc4, tj.len() as u8]);
        bytes.extend_from_slice(tj);
        bytes.push(0x91);
    }
    bytes.push(0xc0);
    let err = msgpack::decode(&bytes, &Type::Dynamic).unwrap_err();
    assert!(err.message.contains("too deeply"), "{}", err.message);
}

#[test]
fn encoding_errors() {
    let ty = Type::object([("a", Type::String)]);
    let err = msgpack::encode(&Value::object_from([("a", Value::Bool(true))]), &ty).unwrap_err();
    assert_eq!(err.to_string(), "a: expected string, got bool");
    let err = msgpack::encode(&Value::object_from([("a", Value::Null), ("zz", Value::Null)]), &ty).unwrap_err();
    assert_eq!(err.path, Path::attr("zz"));
    let err = msgpack::encode(&Value::object_from([("0", Value::Null)]), &ty).unwrap_err();
    assert_eq!(err.path, Path::attr("0"));
    let err = msgpack::encode(&Value::Tuple(vec![]), &Type::Tuple(vec![Type::Bool])).unwrap_err();
    assert!(err.message.contains("tuple of 1"));
    let err = msgpack::encode(&Value::List(vec![Value::Null, num("1")]), &Type::list(Type::String)).unwrap_err();
    assert_eq!(err.path, Path(vec![PathStep::Index(1)]));
    // encode_into leaves the buffer as it was on error.
    let mut out = vec![1, 2, 3];
    assert!(msgpack::encode_into(
        &Value::List(vec![Value::string("ok"), num("1")]),
        &Type::list(Type::String),
        &mut out
    )
    .is_err());
    assert_eq!(out, [1, 2, 3]);
    msgpack::encode_into(&Value::string("ok"), &Type::String, &mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 0xa2, b'o', b'k']);
    // A wrapper of the expected type is unwrapped; of another type it is an error.
    assert_eq!(enc(&Value::Dynamic(Type::String, Box::new(Value::string("x"))), &Type::String), [0xa1, b'x']);
    assert!(msgpack::encode(&Value::Dynamic(Type::Bool, Box::new(Value::Bool(true))), &Type::String).is_err());
}

#[test]
fn encoding_is_lenient_about_collection_variants() {
    // Lists for sets, objects for maps: identical on the wire.
    let set_ty = Type::set(Type::String);
    assert_eq!(
        enc(&Value::List(vec![Value::string("a")]), &set_ty),
        enc(&Value::Set(vec![Value::string("a")]), &set_ty)
    );
    let map_ty = Type::map(Type::String);
    let m = map(&[("k", Value::string("v"))]);
    assert_eq!(enc(&Value::Object(m.clone()), &map_ty), enc(&Value::Map(m.clone()), &map_ty));
    let obj_ty = Type::object([("k", Type::String)]);
    assert_eq!(enc(&Value::Map(m.clone()), &obj_ty), enc(&Value::Object(m), &obj_ty));
}

/// A fixstr.
fn s(text: &str) -> Vec<u8> {
    assert!(text.len() < 32);
    let mut out = vec![0xa0 | text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn out_of_order_objects_inside_lists_and_dynamics() {
    let point = Type::object([("x", Type::Number), ("y", Type::Number)]);
    let ty = Type::object([("a", Type::list(point.clone())), ("b", Type::Dynamic)]);
    let pt = |x: &str, y: &str| Value::object_from([("x", num(x)), ("y", num(y))]);
    let tj = point.to_json();
    let bytes = cat(&[
        &[0x82],
        &s("b"),
        &[0x92, 0xc4, tj.len() as u8],
        tj.as_bytes(),
        &[0x82],
        &s("y"),
        &[0x05],
        &s("x"),
        &[0x06],
        &s("a"),
        &[0x93, 0x82],
        &s("x"),
        &[0x01],
        &s("y"),
        &[0x02],
        &[0x82],
        &s("y"),
        &[0x03],
        &s("x"),
        &[0x04],
        &[0x81],
        &s("y"),
        &[0x07],
    ]);
    let expected = Value::object_from([
        ("a", Value::List(vec![pt("1", "2"), pt("4", "3"), Value::object_from([("x", Value::Null), ("y", num("7"))])])),
        ("b", Value::Dynamic(point.clone(), Box::new(pt("6", "5")))),
    ]);
    assert_eq!(dec(&bytes, &ty), expected);

    // Same-shaped objects from a dynamic type and from the schema do not mix up.
    let other = Type::object([("x", Type::String), ("y", Type::String)]);
    let ty = Type::object([("a", Type::Dynamic), ("b", Type::list(other.clone()))]);
    let v = Value::object_from([
        ("a", Value::Dynamic(Type::list(point.clone()), Box::new(Value::List(vec![pt("1", "2"), pt("3", "4")])))),
        ("b", Value::List(vec![Value::object_from([("x", Value::string("p")), ("y", Value::Null)])])),
    ]);
    round_trip(&v, &ty);
}

#[test]
fn nested_out_of_order_objects_decode_in_reasonable_time() {
    // object({a=number, b=object({a=number, b=...})}) with every level written b-first:
    // each level can only find out it is out of order after reading its whole subtree.
    let depth = 200;
    let mut ty = Type::object([("a", Type::Number)]);
    for _ in 0..depth {
        ty = Type::object([("a", Type::Number), ("b", ty)]);
    }
    let mut bytes = Vec::new();
    for _ in 0..depth {
        bytes.extend(cat(&[&[0x82], &s("b")]));
    }
    bytes.extend(cat(&[&[0x81], &s("a"), &[0x01]]));
    for _ in 0..depth {
        bytes.extend(cat(&[&s("a"), &[0x02]]));
    }
    let start = std::time::Instant::now();
    let v = dec(&bytes, &ty);
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
    let mut inner = &v;
    for _ in 0..depth {
        assert_eq!(inner.get_attr("a"), Some(&num("2")));
        inner = inner.get_attr("b").unwrap();
    }
    assert_eq!(inner, &Value::object_from([("a", num("1"))]));
    assert_eq!(msgpack::decode(&enc(&v, &ty), &ty).unwrap(), v);
}
