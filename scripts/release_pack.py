#!/usr/bin/env python3
"""Packs provider binaries into a release directory that is at once:

* a provider network mirror (serve OUT over HTTPS from any static web server and point a
  `network_mirror` block at it): `<host>/<namespace>/<type>/index.json` and `<version>.json`;
* a filesystem mirror in the packed layout (`filesystem_mirror { path = OUT }` works too);
* what a registry is given: the zips, `terraform-provider-<type>_<version>_SHA256SUMS` and
  `terraform-provider-<type>_<version>_manifest.json` (a copy of terraform-registry-manifest.json).

    release_pack.py --out OUT --cargo-toml Cargo.toml --manifest terraform-registry-manifest.json \
        linux_amd64=PATH [linux_arm64=PATH]

Zips are reproducible: one member `terraform-provider-<type>_v<version>`, mode 0755, a fixed
timestamp, so the same binary gives the same SHA256SUMS line (with the same zlib). Prints one line
per package: `<platform> <zip path> zh:<sha256 of the zip> h1:<hash of its contents>`.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # older Pythons: the two tables read below, nothing more
    tomllib = None

HOSTNAME = "registry.terraform.io"
NAMESPACE = "kvm"
TYPE = "kvm"
PACKAGE = "terraform-provider-kvm"

# ELF e_machine values of the platforms a release can hold.
ELF_MACHINE = {"linux_amd64": 0x3E, "linux_arm64": 0xB7}


def die(msg):
    print(f"[release] {msg}", file=sys.stderr)
    sys.exit(1)


def load_toml(path):
    if tomllib is not None:
        with open(path, "rb") as f:
            return tomllib.load(f)
    # Just enough TOML for Cargo manifests' [package] / [workspace.package] string and
    # `key.workspace = true` entries.
    doc, table = {}, {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line.startswith("[["):
            table = {}  # arrays of tables ([[bin]]): not needed
        elif m := re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line):
            table = doc
            for part in m.group(1).split("."):
                table = table.setdefault(part, {})
        elif m := re.fullmatch(r'([A-Za-z0-9_-]+)\.workspace\s*=\s*true', line):
            table[m.group(1)] = {"workspace": True}
        elif m := re.fullmatch(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"', line):
            table[m.group(1)] = m.group(2)
    return doc


def workspace_version(cargo_toml):
    """The provider's version: the crate's own, else the workspace's (version.workspace = true)."""
    workspace = load_toml(cargo_toml)
    crate_toml = os.path.join(os.path.dirname(cargo_toml), "provider", "Cargo.toml")
    crate = load_toml(crate_toml)["package"]
    if crate.get("name") != PACKAGE:
        die(f"{crate_toml} is not the {PACKAGE} crate")
    version = crate.get("version")
    if isinstance(version, dict) and version.get("workspace"):
        version = workspace["workspace"]["package"]["version"]
    if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?", version):
        die(f"cannot read the provider's version from {crate_toml} / {cargo_toml}: {version!r}")
    return version


def check_elf(path, platform):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        die(f"{path} is not an ELF executable")
    machine = int.from_bytes(head[18:20], "little")
    if machine != ELF_MACHINE[platform]:
        die(f"{path} is not a {platform} binary (ELF machine {machine:#x})")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_zip(binary, member, dest):
    """A zip holding `binary` as `member` (mode 0755), with nothing that varies between runs."""
    info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, so the mode below is read back
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = os.path.getsize(binary)  # known up front: a plain zip, no zip64 extras
    tmp = dest + ".tmp"
    with zipfile.ZipFile(tmp, "w") as zf, open(binary, "rb") as src, zf.open(info, "w") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, dest)


def h1_of_zip(path):
    """Terraform's `h1:` hash (Go's dirhash Hash1) of a package's contents: sha256 of the sorted
    lines `<sha256 hex of file>  <name>\\n`, base64. It is what Terraform records in
    .terraform.lock.hcl for the unpacked package."""
    lines = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(i.filename for i in zf.infolist() if not i.is_dir()):
            h = hashlib.sha256()
            with zf.open(name) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            lines.append(f"{h.hexdigest()}  {name}\n")
    return "h1:" + base64.b64encode(hashlib.sha256("".join(lines).encode()).digest()).decode()


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cargo-toml", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("binaries", nargs="+", metavar="PLATFORM=PATH")
    args = ap.parse_args()

    version = workspace_version(args.cargo_toml)
    provider_dir = os.path.join(args.out, HOSTNAME, NAMESPACE, TYPE)
    os.makedirs(provider_dir, exist_ok=True)

    archives, sums = {}, {}
    for spec in args.binaries:
        platform, _, binary = spec.partition("=")
        if platform not in ELF_MACHINE or not binary:
            die(f"expected PLATFORM=PATH with PLATFORM one of {', '.join(ELF_MACHINE)}, got {spec!r}")
        check_elf(binary, platform)
        name = f"{PACKAGE}_{version}_{platform}.zip"
        dest = os.path.join(provider_dir, name)
        write_zip(binary, f"{PACKAGE}_v{version}", dest)
        zh = sha256_file(dest)
        h1 = h1_of_zip(dest)
        sums[name] = zh
        archives[platform] = {"url": name, "hashes": [h1, f"zh:{zh}"]}
        print(f"{platform} {dest} zh:{zh} {h1}")

    manifest_name = f"{PACKAGE}_{version}_manifest.json"
    with open(args.manifest) as f:
        manifest = json.load(f)
    if manifest.get("metadata", {}).get("protocol_versions") != ["6.0"]:
        die(f"{args.manifest} must declare protocol_versions [\"6.0\"]")
    shutil.copyfile(args.manifest, os.path.join(provider_dir, manifest_name))
    sums[manifest_name] = sha256_file(os.path.join(provider_dir, manifest_name))

    # `<version>.json`: one archive per platform, its URL relative to this file.
    write_json(os.path.join(provider_dir, f"{version}.json"), {"archives": archives})
    sums_path = os.path.join(provider_dir, f"{PACKAGE}_{version}_SHA256SUMS")
    with open(sums_path + ".tmp", "w") as f:
        for name in sorted(sums):
            f.write(f"{sums[name]}  {name}\n")
    os.replace(sums_path + ".tmp", sums_path)

    # index.json lists every version that has a `<version>.json` here, so one directory can keep
    # serving older releases next to the new one.
    versions = sorted(
        n[: -len(".json")]
        for n in os.listdir(provider_dir)
        if n.endswith(".json") and n != "index.json" and not n.endswith("_manifest.json")
    )
    write_json(os.path.join(provider_dir, "index.json"), {"versions": {v: {} for v in versions}})


if __name__ == "__main__":
    main()
