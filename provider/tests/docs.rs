//! Every resource, data source and ephemeral resource has a registry-style page under docs/ that
//! names each of its attributes and nested blocks, so the docs cannot fall behind the schema
//! unnoticed.

use std::path::Path;

use terraform_provider_kvm::registry::Registry;
use terraform_provider_kvm::schema::Block;

fn names(block: &Block, out: &mut Vec<String>) {
    out.extend(block.attributes.iter().map(|a| a.name.clone()));
    for nested in &block.blocks {
        out.push(nested.name.clone());
        names(&nested.block, out);
    }
}

fn check(kind: &str, type_name: &str, block: &Block) -> Vec<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(kind)
        .join(format!("{}.md", type_name.trim_start_matches("kvm_")));
    let Ok(text) = std::fs::read_to_string(&file) else {
        return vec![format!("{type_name}: no page at {}", file.display())];
    };
    let mut all = Vec::new();
    names(block, &mut all);
    all.into_iter()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .map(|n| format!("{type_name}: `{n}` is not documented in {}", file.display()))
        .collect()
}

#[test]
fn every_resource_data_source_and_ephemeral_resource_is_documented() {
    let registry = Registry::builtin();
    let mut missing = Vec::new();
    for r in registry.iter() {
        missing.extend(check("resources", r.type_name(), &r.schema().block));
    }
    for d in registry.data_sources() {
        missing.extend(check("data-sources", d.type_name(), &d.schema().block));
    }
    for e in registry.ephemeral_resources() {
        missing.extend(check("ephemeral-resources", e.type_name(), &e.schema().block));
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
