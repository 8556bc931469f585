//! Typed resource models: a resource's configuration, plan and state as a Rust struct.
//!
//! Terraform hands a resource one object value; a resource reads it into its model once
//! ([`Model::from_value`]), works on fields, and writes the model back once
//! ([`Model::to_value`]). The [`model!`](crate::model!) macro declares the struct: each field's
//! name *is* the attribute's name, so a name is written once, and a test per resource checks the
//! model against its schema ([`check`]). This plays the part of terraform-plugin-framework's
//! `tfsdk`-tagged structs.
//!
//! Field types say what a value may be at the point it is read:
//! * `String`, `bool`, `i64`, `u64`, `Vec<T>` (list), [`SetOf<T>`] (set), `BTreeMap<String, T>`
//!   (map) and nested models: known and non-null, else a diagnostic naming the attribute;
//! * `Option<T>`: may be null (an optional attribute left unset), never unknown;
//! * [`Field<T>`]: may also be unknown (a computed attribute in a plan).

use std::collections::BTreeMap;

use tf_cty::{Number, Path, Value};

use crate::diag::Diagnostic;

/// A value read from, and written to, one attribute (or nested block) of an object.
pub trait AttrValue: Sized {
    /// The same value while planning, when any part of it may be unknown (and anything
    /// configurable may still be null): [`Field`] around scalars, lists, sets and maps.
    type Plan: AttrValue;

    /// Reads `value`, found at `path` (used in the diagnostic when it does not fit).
    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic>;
    /// The value to store.
    fn write(&self) -> Value;
}

/// An object type declared with [`model!`](crate::model!): the apply-time struct and its
/// plan-time twin both implement it.
pub trait Model: AttrValue {
    /// The attribute and nested-block names, in declaration order.
    const ATTRIBUTES: &'static [&'static str];

    /// Reads a whole object value (a configuration, a plan or a state).
    fn from_value(value: &Value) -> Result<Self, Diagnostic> {
        Self::read(value, &Path::root())
    }

    /// The object value of the model, every attribute present.
    fn to_value(&self) -> Value {
        self.write()
    }
}

/// Declares a model struct, fields named as the attributes and read and written by [`AttrValue`],
/// and its plan-time twin, where each field has its type's [`AttrValue::Plan`]. A field whose
/// attribute name is a Rust keyword names it: `secret_type as "type": Option<String>`.
///
/// ```ignore
/// model! {
///     /// The `kvm_pool` object (and `PoolPlan`, the same while planning).
///     pub(super) struct PoolModel / PoolPlan {
///         pub id: Field<String>,
///         pub name: String,
///     }
/// }
/// ```
#[macro_export]
macro_rules! model {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident / $plan:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident $(as $attr:literal)? : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        #[doc = concat!("[`", stringify!($name), "`] while planning: any field may be unknown.")]
        #[derive(Debug, Clone, PartialEq)]
        $vis struct $plan {
            $( $(#[$fmeta])* $fvis $field: <$ty as $crate::model::AttrValue>::Plan, )*
        }

        $crate::model!(@impl $name, $crate::model::Field<$plan>, $($field $($attr)?),*);
        $crate::model!(@impl $plan, $crate::model::Field<$plan>, $($field $($attr)?),*);
    };
    (@impl $name:ident, $planty:ty, $($field:ident $($attr:literal)?),*) => {
        impl $crate::model::AttrValue for $name {
            type Plan = $planty;

            fn read(value: &::tf_cty::Value, path: &::tf_cty::Path) -> ::std::result::Result<Self, $crate::diag::Diagnostic> {
                let attrs = $crate::model::object(value, path)?;
                Ok($name {
                    $( $field: $crate::model::attribute(attrs, $crate::model!(@name $field $($attr)?), path)?, )*
                })
            }

            fn write(&self) -> ::tf_cty::Value {
                ::tf_cty::Value::Object(::std::collections::BTreeMap::from([
                    $( ($crate::model!(@name $field $($attr)?).to_string(), $crate::model::AttrValue::write(&self.$field)), )*
                ]))
            }
        }

        impl $crate::model::Model for $name {
            const ATTRIBUTES: &'static [&'static str] = &[ $( $crate::model!(@name $field $($attr)?) ),* ];
        }
    };
    // The attribute's name: the field's, unless given with `as "name"` (for names such as
    // `type` that are Rust keywords).
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $attr:literal) => { $attr };
}

/// The attributes of an object value; used by [`model!`](crate::model!).
#[doc(hidden)]
pub fn object<'a>(value: &'a Value, path: &Path) -> Result<&'a BTreeMap<String, Value>, Diagnostic> {
    match value {
        Value::Object(attrs) => Ok(attrs),
        Value::Dynamic(_, inner) => object(inner, path),
        other => Err(mismatch(path, "an object", other)),
    }
}

/// Reads attribute `name` of `attrs`; used by [`model!`](crate::model!).
#[doc(hidden)]
pub fn attribute<T: AttrValue>(attrs: &BTreeMap<String, Value>, name: &str, path: &Path) -> Result<T, Diagnostic> {
    static NULL: Value = Value::Null;
    T::read(attrs.get(name).unwrap_or(&NULL), &path.join_attr(name))
}

/// The apply-time value of a plan-time one, when every part of it is known (and it fits `T`).
pub fn resolved<T: AttrValue>(plan: &T::Plan) -> Option<T> {
    T::read(&plan.write(), &Path::root()).ok()
}

/// A value that may also be unknown: a computed attribute while planning.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<T> {
    /// Not set.
    #[default]
    Null,
    /// Known only after apply.
    Unknown,
    /// Known.
    Known(T),
}

impl<T> Field<T> {
    /// The value if known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Field::Known(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the value is null (an unknown value may still turn out null).
    pub fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    /// A field from an optional value (`None` is null).
    pub fn from_option(v: Option<T>) -> Self {
        v.map_or(Field::Null, Field::Known)
    }
}

impl Field<String> {
    /// The string if known.
    pub fn as_deref(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

impl<T: AttrValue> AttrValue for Field<T> {
    type Plan = T::Plan;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        if value.is_unknown() {
            Ok(Field::Unknown)
        } else if value.is_null() {
            Ok(Field::Null)
        } else {
            T::read(value, path).map(Field::Known)
        }
    }

    fn write(&self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Unknown => Value::Unknown,
            Field::Known(v) => v.write(),
        }
    }
}

impl<T: AttrValue> AttrValue for Option<T> {
    type Plan = T::Plan;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        if value.is_unknown() {
            Err(unknown(path))
        } else if value.is_null() {
            Ok(None)
        } else {
            T::read(value, path).map(Some)
        }
    }

    fn write(&self) -> Value {
        self.as_ref().map_or(Value::Null, AttrValue::write)
    }
}

impl AttrValue for String {
    type Plan = Field<String>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(mismatch(path, "a string", other)),
        }
    }

    fn write(&self) -> Value {
        Value::String(self.clone())
    }
}

impl AttrValue for bool {
    type Plan = Field<bool>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::Bool(b) => Ok(*b),
            other => Err(mismatch(path, "a bool", other)),
        }
    }

    fn write(&self) -> Value {
        Value::Bool(*self)
    }
}

impl AttrValue for i64 {
    type Plan = Field<i64>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::Number(n) => n.to_i64().ok_or_else(|| out_of_range(path, n)),
            other => Err(mismatch(path, "a number", other)),
        }
    }

    fn write(&self) -> Value {
        Value::Number(Number::from_i64(*self))
    }
}

impl AttrValue for u64 {
    type Plan = Field<u64>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::Number(n) => n.to_u64().ok_or_else(|| out_of_range(path, n)),
            other => Err(mismatch(path, "a number", other)),
        }
    }

    fn write(&self) -> Value {
        Value::Number(Number::from_u64(*self))
    }
}

/// A list attribute or a list-nested block.
impl<T: AttrValue> AttrValue for Vec<T> {
    type Plan = Field<Vec<T::Plan>>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::List(items) => elements(items, path),
            other => Err(mismatch(path, "a list", other)),
        }
    }

    fn write(&self) -> Value {
        Value::List(self.iter().map(AttrValue::write).collect())
    }
}

/// The elements of a set attribute or a set-nested block, in the order Terraform sent them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetOf<T>(pub Vec<T>);

impl<T: AttrValue> AttrValue for SetOf<T> {
    type Plan = Field<SetOf<T::Plan>>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::Set(items) => elements(items, path).map(SetOf),
            other => Err(mismatch(path, "a set", other)),
        }
    }

    fn write(&self) -> Value {
        Value::Set(self.0.iter().map(AttrValue::write).collect())
    }
}

/// A map attribute.
impl<T: AttrValue> AttrValue for BTreeMap<String, T> {
    type Plan = Field<BTreeMap<String, T::Plan>>;

    fn read(value: &Value, path: &Path) -> Result<Self, Diagnostic> {
        match known(value, path)? {
            Value::Map(entries) => {
                entries.iter().map(|(k, v)| Ok((k.clone(), T::read(v, &path.join_key(k.clone()))?))).collect()
            }
            other => Err(mismatch(path, "a map", other)),
        }
    }

    fn write(&self) -> Value {
        Value::Map(self.iter().map(|(k, v)| (k.clone(), v.write())).collect())
    }
}

/// A raw value, for the rare attribute whose shape the resource checks itself (`dynamic`).
impl AttrValue for Value {
    type Plan = Value;

    fn read(value: &Value, _path: &Path) -> Result<Self, Diagnostic> {
        Ok(value.clone())
    }

    fn write(&self) -> Value {
        self.clone()
    }
}

fn elements<T: AttrValue>(items: &[Value], path: &Path) -> Result<Vec<T>, Diagnostic> {
    items.iter().enumerate().map(|(i, v)| T::read(v, &path.join_index(i as i64))).collect()
}

/// `value` itself if known and set, looking through a `dynamic` wrapper.
fn known<'a>(value: &'a Value, path: &Path) -> Result<&'a Value, Diagnostic> {
    match value {
        Value::Dynamic(_, inner) => known(inner, path),
        Value::Unknown => Err(unknown(path)),
        Value::Null => Err(Diagnostic::attribute_error(
            path.clone(),
            "Value missing",
            format!("{} must be set at this point; this is a bug in the provider if it was.", describe(path)),
        )),
        v => Ok(v),
    }
}

fn unknown(path: &Path) -> Diagnostic {
    Diagnostic::attribute_error(
        path.clone(),
        "Value not known",
        format!("{} must be known at this point; this is a bug in the provider if it was set.", describe(path)),
    )
}

fn mismatch(path: &Path, expected: &str, found: &Value) -> Diagnostic {
    let found = match found {
        Value::Null => "null",
        Value::Unknown => "an unknown value",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Set(_) => "a set",
        Value::Map(_) => "a map",
        Value::Object(_) => "an object",
        Value::Tuple(_) => "a tuple",
        Value::Dynamic(..) => "a dynamic value",
    };
    Diagnostic::attribute_error(
        path.clone(),
        "Internal error",
        format!("{} should be {expected} but is {found}; this is a bug in the provider.", describe(path)),
    )
}

fn out_of_range(path: &Path, n: &Number) -> Diagnostic {
    Diagnostic::attribute_error(
        path.clone(),
        "Number out of range",
        format!("{} is {}, which is not a whole number in range.", describe(path), n.to_f64()),
    )
}

fn describe(path: &Path) -> String {
    if path.is_root() {
        "the object".to_string()
    } else {
        format!("\"{path}\"")
    }
}

/// Compares a model's names with a schema block's attributes and nested blocks: a test of each
/// resource calls it, so a renamed attribute cannot go unnoticed in one of the two.
pub fn check<M: Model>(block: &crate::schema::Block) -> Result<(), String> {
    let mut declared: Vec<&str> = block.attributes.iter().map(|a| a.name.as_str()).collect();
    declared.extend(block.blocks.iter().map(|b| b.name.as_str()));
    declared.sort_unstable();
    let mut modelled = M::ATTRIBUTES.to_vec();
    modelled.sort_unstable();
    let missing: Vec<_> = declared.iter().filter(|n| !modelled.contains(n)).collect();
    let extra: Vec<_> = modelled.iter().filter(|n| !declared.contains(n)).collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!("schema attributes not in the model: {missing:?}; model fields not in the schema: {extra:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::model! {
        /// A nested block.
        struct Inner / InnerPlan {
            port: i64,
        }
    }

    crate::model! {
        /// An object with one field of each kind.
        struct Sample / SamplePlan {
            name: String,
            note: Option<String>,
            id: Field<String>,
            size: Field<u64>,
            flags: Vec<bool>,
            tags: SetOf<String>,
            labels: BTreeMap<String, String>,
            inner: Vec<Inner>,
            kind as "type": Option<String>,
        }
    }

    fn sample_value() -> Value {
        Value::object_from([
            ("name", Value::string("a")),
            ("note", Value::Null),
            ("id", Value::Unknown),
            ("size", Value::Number(Number::from_u64(5))),
            ("flags", Value::List(vec![Value::Bool(true)])),
            ("tags", Value::Set(vec![Value::string("x")])),
            ("labels", Value::Map(BTreeMap::from([("k".to_string(), Value::string("v"))]))),
            ("inner", Value::List(vec![Value::object_from([("port", Value::Number(Number::from_i64(22)))])])),
            ("type", Value::string("t")),
        ])
    }

    #[test]
    fn a_value_reads_into_the_model_and_writes_back_unchanged() {
        let value = sample_value();
        let model = Sample::from_value(&value).unwrap();
        assert_eq!(model.name, "a");
        assert_eq!(model.note, None);
        assert_eq!(model.id, Field::Unknown);
        assert_eq!(model.size, Field::Known(5));
        assert_eq!(model.tags, SetOf(vec!["x".to_string()]));
        assert_eq!(model.inner[0].port, 22);
        assert_eq!(model.kind.as_deref(), Some("t"));
        assert!(Sample::ATTRIBUTES.contains(&"type"));
        assert_eq!(model.to_value(), value);
        assert_eq!(Sample::ATTRIBUTES[0], "name");
    }

    #[test]
    fn the_plan_twin_reads_unknown_anywhere() {
        let mut value = sample_value();
        for name in ["name", "flags", "labels"] {
            crate::resources::set_attr(&mut value, name, Value::Unknown);
        }
        crate::resources::set_attr(
            &mut value,
            "inner",
            Value::List(vec![Value::object_from([("port", Value::Unknown)]), Value::Unknown]),
        );
        let plan = SamplePlan::from_value(&value).unwrap();
        assert_eq!(plan.name, Field::Unknown);
        assert_eq!(plan.note, Field::Null);
        assert_eq!(plan.size, Field::Known(5));
        let Field::Known(inner) = &plan.inner else { panic!("{:?}", plan.inner) };
        assert_eq!(inner[0], Field::Known(InnerPlan { port: Field::Unknown }));
        assert_eq!(inner[1], Field::Unknown);
        assert_eq!(plan.to_value(), value);
        assert_eq!(SamplePlan::ATTRIBUTES, Sample::ATTRIBUTES);
    }

    #[test]
    fn errors_name_the_attribute_path() {
        let with = |name: &str, v: Value| {
            let mut value = sample_value();
            crate::resources::set_attr(&mut value, name, v);
            Sample::from_value(&value).unwrap_err()
        };
        let e = with("inner", Value::List(vec![Value::object_from([("port", Value::Unknown)])]));
        assert_eq!(e.attribute, Some(Path::attr("inner").join_index(0).join_attr("port")));
        assert_eq!(e.summary, "Value not known");
        assert_eq!(with("note", Value::Unknown).attribute, Some(Path::attr("note")));
        let e = with("size", Value::Number(Number::from_i64(-1)));
        assert_eq!((e.attribute, e.summary.as_str()), (Some(Path::attr("size")), "Number out of range"));
        assert_eq!(with("name", Value::Null).summary, "Value missing");
        assert_eq!(with("tags", Value::List(Vec::new())).summary, "Internal error");
    }

    #[test]
    fn the_check_lists_names_on_either_side() {
        use crate::schema::{Attribute, Block};
        use tf_cty::Type;
        let block = Block::new("t").attribute(Attribute::required("port", Type::Number));
        assert_eq!(check::<Inner>(&block), Ok(()));
        let block = Block::new("t").attribute(Attribute::required("host", Type::String));
        let e = check::<Inner>(&block).unwrap_err();
        assert!(e.contains("\"host\"") && e.contains("\"port\""), "{e}");
    }
}
