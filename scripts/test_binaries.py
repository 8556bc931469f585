#!/usr/bin/env python3
"""Lists the test executables a `cargo test --no-run --message-format=json` build made.

Reads cargo's JSON messages on stdin and prints one tab-separated line per test executable:

    PACKAGE  TARGET  PACKAGE-DIR  EXECUTABLE

in cargo's own order (workspace members by name, then lib, bins, tests). scripts/test.sh runs these
executables itself, as `cargo test` would (from the package's directory), so that the second half of
the Terraform matrix runs the binaries of the one build instead of asking cargo again: cargo resolves
features per selected package, and `cargo test -p …` rebuilt about 50 shared crates.
"""

import json
import os
import sys


def main() -> int:
    rows = []
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("profile", {}).get("test"):
            continue
        exe = msg.get("executable")
        if not exe:
            continue
        # package_id: "path+file:///work/main/cty#tf-cty@0.1.0", or "…/acceptance-tests#0.1.0" when
        # the directory has the package's name.
        url, _, fragment = msg["package_id"].rpartition("#")
        package = fragment.split("@", 1)[0] if "@" in fragment else url.rstrip("/").rsplit("/", 1)[-1]
        kind = msg["target"]["kind"][0]
        order = {"lib": 0, "bin": 1}.get(kind, 2)
        rows.append((package, order, msg["target"]["name"], os.path.dirname(msg["manifest_path"]), exe))
    if not rows:
        print("test_binaries.py: no test executables in cargo's messages", file=sys.stderr)
        return 1
    for package, _, target, pkg_dir, exe in sorted(rows):
        print(f"{package}\t{target}\t{pkg_dir}\t{exe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
