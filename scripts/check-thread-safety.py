#!/usr/bin/env python3
"""Compiles every anneal source in a build's compile database with clang's
-Wthread-safety -Werror=thread-safety (syntax only), so the ABSL_GUARDED_BY /
ABSL_EXCLUSIVE_LOCKS_REQUIRED annotations are checked even though the build
itself uses GCC, which ignores them.

    scripts/check-thread-safety.py [BUILD_DIR]     # default: build
"""
import concurrent.futures
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def clang_command(entry):
    """The entry's include paths and macros, compiled by clang, syntax only."""
    args = shlex.split(entry["command"]) if "command" in entry else entry[
        "arguments"]
    keep = []
    it = iter(args[1:])
    for a in it:
        if a in ("-I", "-isystem", "-D"):
            keep += [a, next(it)]
        elif a.startswith(("-I", "-D", "-isystem", "-std=")):
            keep.append(a)
    return ([CLANG, "-fsyntax-only", "-Wthread-safety",
             "-Werror=thread-safety", "-Wno-unknown-warning-option"] + keep +
            [entry["file"]])


def main():
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build")
    db = json.loads((build / "compile_commands.json").read_text())
    sources = [e for e in db
               if pathlib.Path(e["file"]).resolve().is_relative_to(ROOT / "anneal")
               or pathlib.Path(e["file"]).resolve().is_relative_to(ROOT / "bench")
               or pathlib.Path(e["file"]).resolve().is_relative_to(ROOT / "tests")]
    failed = []

    def run(entry):
        p = subprocess.run(clang_command(entry), cwd=entry["directory"],
                           capture_output=True, text=True)
        return entry["file"], p.returncode, p.stderr

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        for path, rc, err in pool.map(run, sources):
            if rc != 0:
                failed.append(path)
                sys.stdout.write(err)
    print(f"check-thread-safety: {len(sources)} files, {len(failed)} failed")
    return 1 if failed else 0


CLANG = shutil.which("clang++") or "clang++"
if __name__ == "__main__":
    sys.exit(main())
