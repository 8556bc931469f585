//! The `kvm_volume` schema: attributes and their single-value rules.

use tf_cty::{Type, Value};

use super::Volume;
use crate::libvirt::name_validator;
use crate::schema::{one_of, Attribute, Block, Schema};
use crate::units;

impl Volume {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A storage volume in a pool: blank, imported from a disk image (a file on the machine running \
             Terraform or an http(s) URL, streamed into the pool and optionally checked against a sha256), or a \
             copy-on-write qcow2 clone of a base volume. Grows in place; shrinking replaces it.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The volume's key (its path on the host)."))
        .attribute(
            Attribute::required("name", Type::String)
                .describe("Volume name (the file name in a directory pool).")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::required("pool", Type::String)
                .describe("Name of the pool holding the volume.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional_computed("size", Type::String)
                .describe(
                    "Virtual size in human units, e.g. `20GiB`. Required for blank volumes; for images and \
                     clones it defaults to the image's (base's) size and may only be larger. Growing resizes in \
                     place; shrinking replaces the volume.",
                )
                .validate(units::size()),
        )
        .attribute(
            Attribute::optional_computed("format", Type::String)
                .describe(
                    "`qcow2` or `raw`. Default: `qcow2` for blank volumes and clones; for images, the image's own \
                     format (read from its header).",
                )
                .force_new()
                .validate(one_of(&["raw", "qcow2"])),
        )
        .attribute(
            Attribute::optional("source", Type::String)
                .describe(
                    "Disk image to import: a path on the machine running Terraform or an `http://` / `https://` \
                     URL. Checked at plan time; streamed into the pool at apply time.",
                )
                .force_new(),
        )
        .attribute(
            Attribute::optional("source_sha256", Type::String)
                .describe("Expected sha256 of the image (hex). A mismatch fails the apply and removes the volume.")
                .force_new()
                .validate(sha256_hex),
        )
        .attribute(
            Attribute::optional("base_volume", Type::String)
                .describe("Name of a volume to clone copy-on-write (the new volume is a qcow2 overlay on it).")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional_computed("base_pool", Type::String)
                .describe("Pool of `base_volume`. Default: `pool`.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(Attribute::computed("path", Type::String).describe("Path of the volume on the host."))
        .attribute(Attribute::computed("size_bytes", Type::Number).describe("Virtual size in bytes."))
        .attribute(Attribute::computed("allocation", Type::Number).describe("Bytes allocated on the host."));
        Volume { schema: Schema::new(0, block) }
    }
}

fn sha256_hex(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        Some(s) => Err(format!("{s:?} is not a sha256: expected 64 hexadecimal digits.")),
        None => Err("expected a string".into()),
    }
}
