//! The `kvm_pool` schema: attributes and their single-value rules.

use tf_cty::{Type, Value};

use super::model::{AUTOSTART, FORCE_DESTROY};
use super::Pool;
use crate::libvirt::name_validator;
use crate::schema::{absolute_path, Attribute, Block, Schema};

impl Pool {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block =
            Block::new(
                "A directory storage pool: a directory on the libvirt host that holds volumes. The directory is \
             created with the given permissions; the pool is started and (by default) started with the host.",
            )
            .attribute(Attribute::computed("id", Type::String).describe("The pool's UUID."))
            .attribute(
                Attribute::required("name", Type::String)
                    .describe("Pool name, unique on the host.")
                    .force_new()
                    .validate(name_validator()),
            )
            .attribute(
                Attribute::required("path", Type::String)
                    .describe("Absolute path of the directory on the libvirt host.")
                    .force_new()
                    .validate(absolute_path()),
            )
            .attribute(
                Attribute::optional_computed("mode", Type::String)
                    .describe("Octal permissions of the directory, e.g. `0711`. Default: libvirt's (`0711`).")
                    .validate(octal_mode),
            )
            .attribute(Attribute::optional_computed("owner", Type::Number).describe("Owner UID of the directory."))
            .attribute(Attribute::optional_computed("group", Type::Number).describe("Group GID of the directory."))
            .attribute(
                Attribute::optional("autostart", Type::Bool)
                    .describe("Start the pool when libvirtd starts. Default `true`.")
                    .default_value(Value::Bool(AUTOSTART)),
            )
            .attribute(
                Attribute::optional("force_destroy", Type::Bool)
                    .describe(
                        "Delete the pool's volumes when the pool is destroyed. Default `false`: destroying a pool \
                     that still holds volumes fails and lists them.",
                    )
                    .default_value(Value::Bool(FORCE_DESTROY)),
            )
            .attribute(Attribute::computed("active", Type::Bool).describe(
                "Whether the pool is running. A pool stopped outside Terraform is started by the next apply.",
            ))
            .attribute(Attribute::computed("capacity", Type::Number).describe("Size of the filesystem, in bytes."))
            .attribute(Attribute::computed("allocation", Type::Number).describe("Bytes allocated to volumes."))
            .attribute(Attribute::computed("available", Type::Number).describe("Bytes free for new volumes."));
        Pool { schema: Schema::new(0, block) }
    }
}

fn octal_mode(v: &Value) -> Result<(), String> {
    match v.as_str() {
        // Written the way libvirt reports it (four octal digits), so the state matches the config.
        Some(m) if u32::from_str_radix(m, 8).is_ok_and(|n| n <= 0o7777 && format!("{n:04o}") == m) => Ok(()),
        Some(m) => Err(format!("{m:?} is not a four-digit octal mode; write it like \"0711\" or \"0755\".")),
        None => Err("expected a string".into()),
    }
}
