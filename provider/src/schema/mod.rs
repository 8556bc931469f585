//! Declaring what a resource's configuration and state look like, and the rules that turn
//! a configuration into a plan.
//!
//! A resource declares its [`Schema`] once; everything Terraform needs to know about it
//! (the tfplugin6 schema, the value's type, which attributes force replacement, which are
//! computed) is derived from that one declaration. [`plan`] applies Terraform's plan rules
//! in one place, so no resource re-implements them.

mod plan;
mod validate;

use std::sync::Arc;

use tf_cty::{Path, Type, Value};

pub use plan::{check_plan_valid, plan_resource_change, replace_paths, PlannedChange};
pub use validate::{int_range, non_empty, one_of, quoted_list, validate_attributes, Validator};

/// A resource's (or the provider's) schema: a versioned top-level block.
#[derive(Clone)]
pub struct Schema {
    /// Bumped when the stored state's shape changes; `UpgradeResourceState` migrates older
    /// versions.
    pub version: i64,
    /// The top-level block.
    pub block: Block,
    /// The block's implied type, derived once: every request decodes values with it.
    value_type: Type,
}

impl Schema {
    /// A schema at `version` for `block`.
    pub fn new(version: i64, block: Block) -> Self {
        let value_type = block.implied_type();
        Schema { version, block, value_type }
    }

    /// The cty type of a whole object of this schema.
    pub fn value_type(&self) -> &Type {
        &self.value_type
    }
}

/// A block: attributes plus nested blocks.
#[derive(Clone, Default)]
pub struct Block {
    /// Attributes, in declaration order.
    pub attributes: Vec<Attribute>,
    /// Nested block types, in declaration order.
    pub blocks: Vec<NestedBlock>,
    /// Markdown description for docs and language servers.
    pub description: String,
    /// Whether the whole block is deprecated.
    pub deprecated: bool,
}

impl Block {
    /// An empty block described by `description`.
    pub fn new(description: impl Into<String>) -> Self {
        Block { description: description.into(), ..Block::default() }
    }

    /// Adds an attribute.
    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Adds a nested block type.
    pub fn block(mut self, block: NestedBlock) -> Self {
        self.blocks.push(block);
        self
    }

    /// The attribute called `name`.
    pub fn get_attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The cty object type that values of this block have.
    pub fn implied_type(&self) -> Type {
        let attrs = self.attributes.iter().map(|a| (a.name.clone(), a.ty.clone()));
        let blocks = self.blocks.iter().map(|b| {
            let inner = b.block.implied_type();
            let ty = match b.nesting {
                Nesting::Single | Nesting::Group => inner,
                Nesting::List => Type::list(inner),
                Nesting::Set => Type::set(inner),
                Nesting::Map => Type::map(inner),
            };
            (b.name.clone(), ty)
        });
        Type::object(attrs.chain(blocks))
    }
}

/// How a nested block repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one; null when absent.
    Single,
    /// Exactly one; Terraform fills in an all-null block when absent.
    Group,
    /// An ordered list.
    List,
    /// An unordered set.
    Set,
    /// A map keyed by the block label.
    Map,
}

/// A nested block type inside a [`Block`].
#[derive(Clone)]
pub struct NestedBlock {
    /// The block type name.
    pub name: String,
    /// How it repeats.
    pub nesting: Nesting,
    /// What is inside.
    pub block: Block,
    /// Minimum number of blocks (0 = no minimum).
    pub min_items: i64,
    /// Maximum number of blocks (0 = no maximum).
    pub max_items: i64,
}

impl NestedBlock {
    /// A nested block type.
    pub fn new(name: impl Into<String>, nesting: Nesting, block: Block) -> Self {
        NestedBlock { name: name.into(), nesting, block, min_items: 0, max_items: 0 }
    }

    /// Sets the allowed number of blocks.
    pub fn items(mut self, min: i64, max: i64) -> Self {
        self.min_items = min;
        self.max_items = max;
        self
    }
}

/// Whether the user must, may or cannot set an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The user must set it.
    Required,
    /// The user may set it; null when unset.
    Optional,
    /// The user may set it; the provider decides when unset.
    OptionalComputed,
    /// Only the provider sets it.
    Computed,
}

/// One attribute of a [`Block`].
#[derive(Clone)]
pub struct Attribute {
    /// The attribute name.
    pub name: String,
    /// Its cty type.
    pub ty: Type,
    /// Markdown description.
    pub description: String,
    /// Who sets it.
    pub presence: Presence,
    /// Hidden in plan output and in logs.
    pub sensitive: bool,
    /// A change to it replaces the object rather than updating it in place.
    pub force_new: bool,
    /// The value planned when the configuration leaves an optional+computed attribute unset.
    pub default: Option<Value>,
    /// Checks run on the configured value whenever it is known.
    pub validators: Vec<Arc<dyn Validator>>,
    /// Whether the attribute is deprecated.
    pub deprecated: bool,
}

impl Attribute {
    fn new(name: &str, ty: Type, presence: Presence) -> Self {
        Attribute {
            name: name.to_string(),
            ty,
            description: String::new(),
            presence,
            sensitive: false,
            force_new: false,
            default: None,
            validators: Vec::new(),
            deprecated: false,
        }
    }

    /// An attribute the user must set.
    pub fn required(name: &str, ty: Type) -> Self {
        Attribute::new(name, ty, Presence::Required)
    }

    /// An attribute the user may set.
    pub fn optional(name: &str, ty: Type) -> Self {
        Attribute::new(name, ty, Presence::Optional)
    }

    /// An attribute only the provider sets.
    pub fn computed(name: &str, ty: Type) -> Self {
        Attribute::new(name, ty, Presence::Computed)
    }

    /// An attribute the user may set, which the provider decides when unset.
    pub fn optional_computed(name: &str, ty: Type) -> Self {
        Attribute::new(name, ty, Presence::OptionalComputed)
    }

    /// Sets the description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Marks it sensitive.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Marks it as forcing replacement when it changes.
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }

    /// Plans `value` when the configuration leaves the attribute unset. Makes the
    /// attribute optional+computed (Terraform only accepts a planned value that differs
    /// from the configuration for computed attributes).
    pub fn default_value(mut self, value: Value) -> Self {
        self.presence = Presence::OptionalComputed;
        self.default = Some(value);
        self
    }

    /// Adds a validator.
    pub fn validate(mut self, validator: impl Validator + 'static) -> Self {
        self.validators.push(Arc::new(validator));
        self
    }

    /// True if the provider may set the value.
    pub fn is_computed(&self) -> bool {
        matches!(self.presence, Presence::Computed | Presence::OptionalComputed)
    }

    /// True if the user may set the value.
    pub fn is_configurable(&self) -> bool {
        !matches!(self.presence, Presence::Computed)
    }
}

/// Looks up the value at `path` (attribute, key and index steps) in `value`.
pub fn value_at<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    use tf_cty::PathStep;
    let mut current = value;
    for step in &path.0 {
        current = match (step, current) {
            (PathStep::Attr(name), Value::Object(attrs)) => attrs.get(name)?,
            (PathStep::Key(key), Value::Map(entries)) => entries.get(key)?,
            (PathStep::Index(i), Value::List(items) | Value::Tuple(items)) => items.get(usize::try_from(*i).ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests;
