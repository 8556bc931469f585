//! Property tests: random types with random conforming values (nulls, unknowns, dynamic
//! wrappers, big and fractional numbers anywhere) survive both codecs exactly, and
//! numbers survive text and msgpack exactly.

use std::cmp::Ordering;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use tf_cty::{json, msgpack, Number, Type, Value};

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_][a-z0-9_]{0,8}", "\\PC{0,6}"]
}

fn arb_type() -> impl Strategy<Value = Type> {
    let leaf = prop_oneof![Just(Type::Bool), Just(Type::Number), Just(Type::String), Just(Type::Dynamic)];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            btree_map(attr_name(), inner.clone(), 0..5).prop_map(Type::Object),
            vec(inner, 0..4).prop_map(Type::Tuple),
        ]
    })
}

/// A type to put inside a dynamic wrapper: anything but `dynamic` itself at the top.
fn arb_concrete_type() -> impl Strategy<Value = Type> {
    arb_type().prop_filter("wrapper type must be concrete", |t| *t != Type::Dynamic)
}

/// Decimal text with up to 40 significant digits and a wide exponent.
fn decimal_text() -> impl Strategy<Value = String> {
    ("-?", "[0-9]{1,40}", proptest::option::of(0usize..40), -400i32..400).prop_map(|(sign, digits, point, exp)| {
        let mut s = sign;
        match point {
            Some(p) if p < digits.len() => {
                s.push_str(&digits[..p.max(1)]);
                s.push('.');
                s.push_str(&digits[p.max(1)..]);
            }
            _ => s.push_str(&digits),
        }
        if exp != 0 {
            s.push_str(&format!("e{exp}"));
        }
        s
    })
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        3 => any::<i64>().prop_map(Number::from_i64),
        1 => (-300i64..300).prop_map(Number::from_i64),
        1 => any::<u64>().prop_map(Number::from_u64),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Number::from_f64),
        3 => decimal_text().prop_map(|s| Number::parse(&s).unwrap()),
        1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY)].prop_map(Number::from_f64),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![8 => "\\PC{0,12}", 1 => "[a-z]{30,40}", 1 => "\\PC{250,300}", 1 => "[\\x00-\\x1f\"\\\\]{0,5}"]
}

/// A value conforming to `ty`; `budget` bounds how many dynamic wrappers may nest.
fn arb_value(ty: &Type, budget: u32) -> BoxedStrategy<Value> {
    let known: BoxedStrategy<Value> = match ty {
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => arb_number().prop_map(Value::Number).boxed(),
        Type::String => arb_string().prop_map(Value::String).boxed(),
        Type::List(e) => vec(arb_value(e, budget), 0..4).prop_map(Value::List).boxed(),
        Type::Set(e) => vec(arb_value(e, budget), 0..4).prop_map(Value::Set).boxed(),
        Type::Map(e) => btree_map("\\PC{0,5}", arb_value(e, budget), 0..4).prop_map(Value::Map).boxed(),
        Type::Object(attrs) => {
            let fields: Vec<_> = attrs.iter().map(|(k, t)| (Just(k.clone()), arb_value(t, budget))).collect();
            fields.prop_map(|fs| Value::Object(fs.into_iter().collect())).boxed()
        }
        Type::Tuple(ts) => {
            let elems: Vec<_> = ts.iter().map(|t| arb_value(t, budget)).collect();
            elems.prop_map(Value::Tuple).boxed()
        }
        Type::Dynamic if budget == 0 => return prop_oneof![Just(Value::Null), Just(Value::Unknown)].boxed(),
        Type::Dynamic => arb_concrete_type()
            .prop_flat_map(move |t| arb_value(&t, budget - 1).prop_map(move |v| Value::Dynamic(t.clone(), Box::new(v))))
            .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 1 => Just(Value::Unknown), 6 => known].boxed()
}

fn typed_value() -> impl Strategy<Value = (Type, Value)> {
    arb_type().prop_flat_map(|t| {
        let v = arb_value(&t, 2);
        (Just(t), v)
    })
}

fn has_infinity(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_infinite(),
        Value::List(xs) | Value::Set(xs) | Value::Tuple(xs) => xs.iter().any(has_infinity),
        Value::Map(m) | Value::Object(m) => m.values().any(has_infinity),
        Value::Dynamic(_, v) => has_infinity(v),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_values_conform((ty, v) in typed_value()) {
        prop_assert!(v.conforms(&ty), "{v:?} vs {ty}");
    }

    #[test]
    fn msgpack_round_trips((ty, v) in typed_value()) {
        let bytes = msgpack::encode(&v, &ty).unwrap();
        prop_assert_eq!(msgpack::decode(&bytes, &ty).unwrap(), v);
    }

    #[test]
    fn json_round_trips_known_values((ty, v) in typed_value()) {
        if v.is_wholly_known() && !has_infinity(&v) {
            let text = json::encode(&v, &ty).unwrap();
            prop_assert_eq!(json::decode(&text, &ty).unwrap(), v);
        } else {
            prop_assert!(json::encode(&v, &ty).is_err());
        }
    }

    #[test]
    fn type_json_round_trips(ty in arb_type()) {
        prop_assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
    }

    #[test]
    fn truncated_msgpack_is_rejected((ty, v) in typed_value(), cut in any::<prop::sample::Index>()) {
        let bytes = msgpack::encode(&v, &ty).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(msgpack::decode(&bytes[..cut], &ty).is_err());
    }

    #[test]
    fn decoders_never_panic(ty in arb_type(), bytes in vec(any::<u8>(), 0..64)) {
        let _ = msgpack::decode(&bytes, &ty);
        let _ = json::decode(&bytes, &ty);
    }

    #[test]
    fn corrupted_encodings_never_panic((ty, v) in typed_value(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = msgpack::encode(&v, &ty).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = msgpack::decode(&bytes, &ty);
        if let Ok(mut text) = json::encode(&v, &ty) {
            let i = at.index(text.len());
            text[i] = byte;
            let _ = json::decode(&text, &ty);
        }
    }

    #[test]
    fn number_text_round_trips(n in arb_number()) {
        prop_assert_eq!(Number::parse(&n.to_string()).unwrap(), n);
    }

    #[test]
    fn decimal_text_is_exact(s in decimal_text()) {
        let n = Number::parse(&s).unwrap();
        let bytes = msgpack::encode(&Value::Number(n.clone()), &Type::Number).unwrap();
        prop_assert_eq!(msgpack::decode(&bytes, &Type::Number).unwrap(), Value::Number(n.clone()));
        // Nearest f64 as std computes it from the same text.
        prop_assert_eq!(n.to_f64(), s.parse::<f64>().unwrap());
    }

    #[test]
    fn f64_values_are_exact(f in any::<f64>().prop_filter("not NaN", |f| !f.is_nan()), g in any::<f64>().prop_filter("not NaN", |f| !f.is_nan())) {
        let (a, b) = (Number::from_f64(f), Number::from_f64(g));
        prop_assert_eq!(a.to_f64(), f);
        prop_assert_eq!(a.to_f64_exact(), Some(f));
        prop_assert_eq!(a.cmp(&b), f.partial_cmp(&g).unwrap());
        prop_assert_eq!(a == b, f == g);
        // The shortest text for f names a different (decimal) number, but rounds back to f.
        prop_assert_eq!(Number::parse(&format!("{f:e}")).unwrap().to_f64(), f);
    }

    #[test]
    fn integers_compare_like_integers(a in any::<i64>(), b in any::<u64>()) {
        let (na, nb) = (Number::from_i64(a), Number::from_u64(b));
        prop_assert_eq!(na.cmp(&nb), i128::from(a).cmp(&i128::from(b)));
        prop_assert_eq!(na.to_i64(), Some(a));
        prop_assert_eq!(nb.to_u64(), Some(b));
        prop_assert_eq!(nb.to_i64(), i64::try_from(b).ok());
        let sum_text = (i128::from(a) * 1000 + 5).to_string() + "e-3";
        let frac = Number::parse(&sum_text).unwrap();
        prop_assert!(!frac.is_integer());
        prop_assert_eq!(frac.cmp(&na), Ordering::Greater);
    }
}
