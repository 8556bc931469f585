//! What a `kvm_pool` configuration asks for: the rules between its attributes, in one place
//! (validation and planning both call them).

use tf_cty::Path;

use super::model::{PoolPlan, DIR, LOGICAL};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::Field;

/// Where LVM puts the device nodes of a volume group's logical volumes; libvirt makes it a
/// `logical` pool's path whatever the definition says.
pub(super) fn logical_path(volume_group: &str) -> String {
    format!("/dev/{volume_group}")
}

/// The volume group of a `logical` pool: `volume_group`, else the pool's name (libvirt's default).
pub(super) fn volume_group(plan: &PoolPlan) -> Field<String> {
    match &plan.volume_group {
        Field::Null => plan.name.clone(),
        given => given.clone(),
    }
}

/// What is wrong between the attributes of a configuration (values still unknown pass).
pub(super) fn problems(config: &PoolPlan) -> Diagnostics {
    let mut diags = Diagnostics::new();
    match &config.pool_type {
        // Not configured: the default, a directory pool.
        Field::Null => directory_problems(config, &mut diags),
        Field::Known(t) if t == DIR => directory_problems(config, &mut diags),
        Field::Known(t) if t == LOGICAL => logical_problems(config, &mut diags),
        _ => {}
    }
    if let Field::Known(devices) = &config.devices {
        for (i, device) in devices.iter().enumerate() {
            let Some(device) = device.as_deref() else { continue };
            if devices[..i].iter().any(|d| d.as_deref() == Some(device)) {
                diags.push(Diagnostic::attribute_error(
                    Path::attr("devices").join_index(i as i64),
                    "Duplicate device",
                    format!("{device:?} is listed twice; list each device once."),
                ));
            }
        }
    }
    diags
}

fn directory_problems(config: &PoolPlan, diags: &mut Diagnostics) {
    if config.path == Field::Null {
        diags.push(Diagnostic::attribute_error(
            Path::attr("path"),
            "Missing path",
            "A directory pool needs `path`, the directory on the libvirt host, e.g. path = \"/var/lib/libvirt/pools/fast\" \
             (or set type = \"logical\" for a pool on an LVM volume group).",
        ));
    }
    for (attr, set) in
        [("volume_group", config.volume_group != Field::Null), ("devices", config.devices != Field::Null)]
    {
        if set {
            diags.push(Diagnostic::attribute_error(
                Path::attr(attr),
                "Only for logical pools",
                format!("`{attr}` describes an LVM volume group; set type = \"logical\", or remove it."),
            ));
        }
    }
}

fn logical_problems(config: &PoolPlan, diags: &mut Diagnostics) {
    let permissions = [
        ("mode", config.mode != Field::Null),
        ("owner", config.owner != Field::Null),
        ("group", config.group != Field::Null),
    ];
    for (attr, set) in permissions {
        if set {
            diags.push(Diagnostic::attribute_error(
                Path::attr(attr),
                "Only for directory pools",
                format!(
                    "`{attr}` sets the permissions of a directory pool's directory; a logical pool's volumes are \
                     device nodes LVM makes. Remove it."
                ),
            ));
        }
    }
    if let (Some(path), Some(group)) = (config.path.as_deref(), volume_group(config).as_deref()) {
        let wanted = logical_path(group);
        if path != wanted {
            diags.push(Diagnostic::attribute_error(
                Path::attr("path"),
                "Path of a logical pool",
                format!("The volumes of volume group {group:?} appear in {wanted}; remove `path` (it is set for you) or write {wanted:?}."),
            ));
        }
    }
    let builds = match &config.devices {
        Field::Known(devices) => !devices.is_empty(),
        Field::Unknown => true,
        Field::Null => false,
    };
    if config.force_destroy == Field::Known(true) && !builds {
        diags.push(Diagnostic::attribute_error(
            Path::attr("force_destroy"),
            "Nothing to destroy",
            "A logical pool without `devices` uses an existing volume group, and destroying the pool leaves the group \
             and its logical volumes alone; force_destroy would delete every logical volume in it. Remove \
             force_destroy, or list the `devices` the pool builds its own volume group from.",
        ));
    }
}

#[cfg(test)]
mod tests {
    use tf_cty::Value;

    use super::*;
    use crate::model::Model;

    fn config(attrs: &[(&str, Value)]) -> PoolPlan {
        let mut all: std::collections::BTreeMap<String, Value> =
            super::super::model::PoolModel::ATTRIBUTES.iter().map(|a| (a.to_string(), Value::Null)).collect();
        all.insert("name".into(), Value::string("fast"));
        for (k, v) in attrs {
            all.insert(k.to_string(), v.clone());
        }
        PoolPlan::from_value(&Value::Object(all)).unwrap()
    }

    fn paths(diags: &Diagnostics) -> Vec<String> {
        diags.0.iter().map(|d| format!("{:?}", d.attribute)).collect()
    }

    #[test]
    fn a_directory_pool_needs_a_path_and_no_lvm_attributes() {
        assert!(problems(&config(&[("path", Value::string("/srv/fast"))])).is_empty());
        let diags = problems(&config(&[
            ("volume_group", Value::string("vg")),
            ("devices", Value::List(vec![Value::string("/dev/sdb")])),
        ]));
        let text = paths(&diags).join(" ");
        assert_eq!(diags.0.len(), 3, "{text}");
        assert!(text.contains("path") && text.contains("volume_group") && text.contains("devices"), "{text}");
    }

    #[test]
    fn a_logical_pool_takes_no_permissions_and_no_other_path() {
        let logical = ("type", Value::string(LOGICAL));
        assert!(problems(&config(std::slice::from_ref(&logical))).is_empty());
        assert!(problems(&config(&[logical.clone(), ("path", Value::string("/dev/fast"))])).is_empty());
        let diags = problems(&config(&[
            logical.clone(),
            ("path", Value::string("/srv/fast")),
            ("mode", Value::string("0755")),
        ]));
        assert_eq!(diags.0.len(), 2, "{:?}", paths(&diags));
        let path = diags.0.iter().find(|d| d.summary == "Path of a logical pool").unwrap();
        assert!(path.detail.contains("/dev/fast"), "{}", path.detail);
    }

    #[test]
    fn force_destroy_needs_a_group_of_the_pools_own() {
        let logical = ("type", Value::string(LOGICAL));
        let force = ("force_destroy", Value::Bool(true));
        let diags = problems(&config(&[logical.clone(), force.clone()]));
        assert_eq!(diags.0.len(), 1);
        assert!(diags.0.first().unwrap().detail.contains("existing volume group"));
        let devices = ("devices", Value::List(vec![Value::string("/dev/loop7")]));
        assert!(problems(&config(&[logical, force, devices])).is_empty());
    }

    #[test]
    fn a_device_listed_twice_is_named() {
        let diags = problems(&config(&[
            ("type", Value::string(LOGICAL)),
            ("devices", Value::List(vec![Value::string("/dev/sdb"), Value::string("/dev/sdb")])),
        ]));
        assert_eq!(diags.0.len(), 1);
        assert!(paths(&diags)[0].contains('1'), "{:?}", paths(&diags));
    }
}
