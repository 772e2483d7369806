#!/usr/bin/env python3
"""Checks that every file under anneal/ includes only its own layer and the
layers below it (docs/architecture.md). A target's include path is the
repository root, so the compiler alone would accept any "anneal/..." include;
this makes a wrong one a test failure. Run from anywhere:

    scripts/check-layers.py            # exit 1 and one line per violation
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Layer -> the layers it may include (besides itself). Longest prefix wins.
# "proto" is anneal/v1/*.pb.h without the service; "service" adds it.
BELOW = {
    "anneal/engine": {"proto"},
    "anneal/model": {"anneal/engine", "proto"},
    "anneal/render": {"anneal/engine", "proto"},
    "anneal/importers": {"anneal/engine", "proto"},
    "anneal/server/common": {"anneal/engine", "proto"},
    "anneal/server/store": {"proto"},
    "anneal/server/store/memory": {"anneal/server/store", "proto"},
    "anneal/server/store/sqlite": {"anneal/server/store", "proto"},
    "anneal/server/telemetry": {"anneal/server/store", "proto"},
    "anneal/server/registry": {"anneal/server/telemetry",
                               "anneal/server/store", "anneal/server/common",
                               "anneal/model", "anneal/engine", "proto",
                               "service"},
    "anneal/server/telemetry/exporter": {
        "anneal/server/registry", "anneal/server/telemetry", "anneal/render",
        "anneal/server/store", "anneal/server/common", "anneal/model",
        "anneal/engine", "proto", "service"},
    "anneal/server": {"anneal/server/telemetry/exporter",
                      "anneal/server/telemetry", "anneal/server/registry",
                      "anneal/server/store",
                      "anneal/server/store/memory",
                      "anneal/server/store/sqlite", "anneal/server/common",
                      "anneal/model", "anneal/engine", "proto", "service"},
    "anneal/client": {"anneal/model", "anneal/engine", "proto", "service"},
    "anneal/cli": {"anneal/importers", "anneal/render", "anneal/model", "anneal/engine", "proto",
                   "service"},
}
# Test-only helpers any test above them may use.
TESTING = {"anneal/engine/testing": "anneal/engine",
           "anneal/client/testing": "anneal/client",
           "anneal/server/store/testing": "anneal/server/store"}
# Tests may also run a layer over real backends of a seam below it.
TESTS_MAY_USE = {
    "anneal/server/registry": {"anneal/server/store/memory",
                               "anneal/server/store/sqlite"},
    "anneal/server/telemetry/exporter": {"anneal/server/store/memory"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"(anneal/[^"]+)"', re.M)


def layer_of(path):
    """The layer a file (or an included header) belongs to."""
    if path.startswith("anneal/v1/"):
        return "service" if path.startswith("anneal/v1/service") else "proto"
    for testing, owner in TESTING.items():
        if path.startswith(testing + "/"):
            return owner
    best = None
    for layer in BELOW:
        if path.startswith(layer + "/") and (best is None or
                                             len(layer) > len(best)):
            best = layer
    return best


def main():
    bad = []
    for f in sorted((ROOT / "anneal").rglob("*")):
        if f.suffix not in (".h", ".cc"):
            continue
        rel = f.relative_to(ROOT).as_posix()
        mine = layer_of(rel)
        is_test = rel.endswith("_test.cc") or "/testing/" in rel
        for inc in INCLUDE.findall(f.read_text()):
            theirs = layer_of(inc)
            if theirs in (mine, None) or theirs in BELOW.get(mine, ()):
                continue
            if is_test and theirs in TESTS_MAY_USE.get(mine, ()):
                continue
            bad.append(f"{rel}: includes {inc} ({theirs} is not below {mine})")
    for line in bad:
        print(line)
    print(f"check-layers: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
