"""The committed PyTorch reference data is exactly what its generator writes.

tests/data/pytorch_reference.json is produced by
scripts/gen_pytorch_reference.py and consumed by
anneal/engine/pytorch_reference_test.cc. This test re-runs the generator into a
temporary file and requires byte-for-byte equality, so the script and the
data can never drift apart (edit the script, then regenerate and commit both).

Run with the Python that has torch (the Debian system python):
  /usr/bin/python3 -m pytest tests/python/test_reference_fresh.py
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_pytorch_reference.py"
DATA = ROOT / "tests" / "data" / "pytorch_reference.json"


def _differing_cases(committed, fresh):
    """Names of the cases that differ, for a readable failure message."""
    try:
        old = {c["name"]: c for c in json.loads(committed)["cases"]}
        new = {c["name"]: c for c in json.loads(fresh)["cases"]}
    except (ValueError, KeyError) as e:
        return ["<unparseable: %s>" % e]
    names = sorted(set(old) | set(new))
    return [n for n in names if old.get(n) != new.get(n)] or ["<header>"]


def test_reference_data_is_fresh(tmp_path):
    pytest.importorskip(
        "torch", reason="needs torch: run with /usr/bin/python3 -m pytest")
    out = tmp_path / "pytorch_reference.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True,
                   cwd=str(ROOT))
    committed = DATA.read_text()
    fresh = out.read_text()
    assert fresh == committed, (
        "tests/data/pytorch_reference.json is stale; regenerate it with\n"
        "  /usr/bin/python3 scripts/gen_pytorch_reference.py "
        "tests/data/pytorch_reference.json\n"
        "differing cases: %s" % ", ".join(_differing_cases(committed, fresh)))


def test_generator_writes_stdout_identically(tmp_path):
    """The stdout form of the usage line gives the same bytes as the file."""
    pytest.importorskip(
        "torch", reason="needs torch: run with /usr/bin/python3 -m pytest")
    result = subprocess.run([sys.executable, str(SCRIPT)], check=True,
                            cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert result.stdout.decode() == DATA.read_text()
