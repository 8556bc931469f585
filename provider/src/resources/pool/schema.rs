//! The `kvm_pool` schema: attributes and their single-value rules.

use tf_cty::{Type, Value};

use super::model::{AUTOSTART, DIR, FORCE_DESTROY, LOGICAL};
use super::Pool;
use crate::libvirt::name_validator;
use crate::schema::{absolute_path, each, one_of, Attribute, Block, Schema};

impl Pool {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A storage pool on the libvirt host: a directory that holds volumes as files (`type = \"dir\"`, the \
             default; created with the given permissions), or an LVM volume group whose logical volumes are the \
             volumes (`type = \"logical\"`: an existing group, or one built from `devices`). The pool is started \
             and (by default) started with the host.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The pool's UUID."))
        .attribute(
            Attribute::required("name", Type::String)
                .describe("Pool name, unique on the host.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional("type", Type::String)
                .describe(
                    "`dir` (default): a directory of volume files. `logical`: an LVM volume group; its volumes are \
                         logical volumes (raw, fully allocated, grown in place with `lvextend`).",
                )
                .default_value(Value::string(DIR))
                .force_new()
                .validate(one_of(&[DIR, LOGICAL])),
        )
        .attribute(
            Attribute::optional_computed("path", Type::String)
                .describe(
                    "Absolute path of the directory on the libvirt host; required for `dir` pools. For `logical` \
                         pools it is `/dev/<volume_group>`, set for you.",
                )
                .force_new()
                .validate(absolute_path()),
        )
        .attribute(
            Attribute::optional_computed("volume_group", Type::String)
                .describe("`logical` pools: the LVM volume group. Default: the pool's `name`.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional("devices", Type::list(Type::String))
                .describe(
                    "`logical` pools: block devices (e.g. `/dev/nvme1n1`) to build a new volume group from \
                         (`pvcreate` + `vgcreate`); destroying the pool removes the group and wipes their LVM labels. \
                         A device that holds anything (a filesystem, a partition table, an LVM label) is refused, so \
                         a typo never wipes a disk. Without `devices` the pool uses an existing volume group and \
                         destroying it leaves the group alone.",
                )
                .force_new()
                .validate(each(absolute_path())),
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
                     that still holds volumes fails and lists them. Not for a `logical` pool on an existing \
                     volume group (its logical volumes are never deleted with the pool).",
                )
                .default_value(Value::Bool(FORCE_DESTROY)),
        )
        .attribute(
            Attribute::computed("active", Type::Bool).describe(
                "Whether the pool is running. A pool stopped outside Terraform is started by the next apply.",
            ),
        )
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
