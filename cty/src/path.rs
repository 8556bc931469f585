use std::fmt;

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An object attribute or a nested block type, by name.
    Attr(String),
    /// A map element (or a MAP-nested block), by key.
    Key(String),
    /// A list or tuple element (or a LIST-nested block), by position.
    Index(i64),
}

/// A path into a value, such as `values["password"]` or `disk[0].bus`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path(pub Vec<PathStep>);

impl Path {
    /// The empty path: the value itself.
    pub fn root() -> Path {
        Path(Vec::new())
    }
    /// A path of one attribute step.
    pub fn attr(name: impl Into<String>) -> Path {
        Path(vec![PathStep::Attr(name.into())])
    }
    /// This path followed by an attribute step.
    pub fn join_attr(&self, name: impl Into<String>) -> Path {
        self.join(PathStep::Attr(name.into()))
    }
    /// This path followed by a map-key step.
    pub fn join_key(&self, key: impl Into<String>) -> Path {
        self.join(PathStep::Key(key.into()))
    }
    /// This path followed by an index step.
    pub fn join_index(&self, index: i64) -> Path {
        self.join(PathStep::Index(index))
    }
    /// This path followed by `step`.
    pub fn join(&self, step: PathStep) -> Path {
        let mut steps = self.0.clone();
        steps.push(step);
        Path(steps)
    }
    /// True for the empty path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(name) if i == 0 => write!(f, "{name}")?,
                PathStep::Attr(name) => write!(f, ".{name}")?,
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
                PathStep::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}
