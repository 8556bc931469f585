//! Building object values by attribute name, for tests only: the provider itself reads and
//! writes objects through typed models (`crate::model`).

use std::collections::BTreeMap;

use tf_cty::Value;

/// An object of `block`'s shape with every attribute null and every nested block empty.
pub fn empty_object(block: &crate::schema::Block) -> Value {
    use crate::schema::Nesting;
    let mut attrs: BTreeMap<String, Value> = block.attributes.iter().map(|a| (a.name.clone(), Value::Null)).collect();
    for nested in &block.blocks {
        let empty = match nested.nesting {
            Nesting::List => Value::List(Vec::new()),
            Nesting::Set => Value::Set(Vec::new()),
            Nesting::Map => Value::Map(BTreeMap::new()),
            Nesting::Single | Nesting::Group => Value::Null,
        };
        attrs.insert(nested.name.clone(), empty);
    }
    Value::Object(attrs)
}

/// Sets attribute `name` of the object `target` (no-op on non-objects).
pub fn set_attr(target: &mut Value, name: &str, value: Value) {
    if let Value::Object(attrs) = target {
        attrs.insert(name.to_string(), value);
    }
}
