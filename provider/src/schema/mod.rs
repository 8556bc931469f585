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

pub use plan::{check_plan_valid, plan_resource_change, replace_paths, strip_write_only, with_write_only};
pub use validate::{
    absolute_path, check_write_only, each, int_range, non_empty, one_of, quoted_list, validate_attributes, Validator,
    WRITE_ONLY_TERRAFORM,
};

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
    /// Declarations Terraform's rules do not allow (see [`Schema::problems`]).
    problems: Vec<String>,
}

impl Schema {
    /// A schema at `version` for `block`. Declarations that break Terraform's schema rules are
    /// not a panic: they are collected in [`Schema::problems`], and the server refuses to hand
    /// out a schema that has any.
    pub fn new(version: i64, block: Block) -> Self {
        let value_type = block.implied_type();
        let mut problems = Vec::new();
        block.check(&Path::root(), false, &mut problems);
        Schema { version, block, value_type, problems }
    }

    /// The cty type of a whole object of this schema.
    pub fn value_type(&self) -> &Type {
        &self.value_type
    }

    /// What is wrong with the declaration (empty for a usable schema): a write-only attribute
    /// that is computed, forces replacement, has a default or sits in a set-nested block; a
    /// write-only twin that does not exist.
    pub fn problems(&self) -> &[String] {
        &self.problems
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

    /// Terraform's rules for write-only attributes (its own schema check refuses the same):
    /// they are never computed (a value the provider would have to remember), never in a set
    /// (whose elements are identified by their whole value), and force nothing (their value is
    /// in no state to compare with: a companion version attribute does that).
    fn check(&self, path: &Path, in_set: bool, problems: &mut Vec<String>) {
        for a in &self.attributes {
            let at = path.join_attr(&a.name);
            if a.write_only {
                if a.is_computed() {
                    problems.push(format!("{at}: a write-only attribute cannot be computed or have a default"));
                }
                if a.force_new {
                    problems.push(format!("{at}: a write-only attribute cannot force replacement"));
                }
                if in_set {
                    problems.push(format!("{at}: set-nested blocks cannot hold write-only attributes"));
                }
            }
            if let Some(twin) = &a.write_only_twin {
                if !self.get_attribute(twin).is_some_and(|t| t.write_only) {
                    problems.push(format!("{at}: its write-only twin {twin:?} is not a write-only attribute here"));
                }
            }
        }
        for nested in &self.blocks {
            let in_set = in_set || nested.nesting == Nesting::Set;
            nested.block.check(&path.join_attr(&nested.name), in_set, problems);
        }
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
    /// Write-only (Terraform 1.11 and later): the value is in the configuration only, never in
    /// a plan or state; create and update see it, nothing else does.
    pub write_only: bool,
    /// The write-only attribute of the same block to prefer over this one where Terraform can
    /// send write-only values (a warning says so).
    pub write_only_twin: Option<String>,
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
            write_only: false,
            write_only_twin: None,
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

    /// Makes it write-only: Terraform (1.11 and later) sends the value only in the
    /// configuration, the provider uses it while applying, and it is never in a plan or state.
    /// Cannot be combined with computed, defaults or `force_new` (see [`Schema::problems`]);
    /// pair it with a version attribute whose change makes the provider use the value again.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }

    /// Names this (stored) attribute's write-only twin: where Terraform can send write-only
    /// values, setting this one draws a warning recommending the twin.
    pub fn prefer_write_only(mut self, twin: &str) -> Self {
        self.write_only_twin = Some(twin.to_string());
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
