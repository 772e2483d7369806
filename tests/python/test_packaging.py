"""The Python package installs without a package index or a C++ build: a
venv that sees Debian's python3-grpcio and python3-protobuf, and
`pip install --no-build-isolation --no-index ./python` (docs/python-client.md)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pip_installs_a_working_package(tmp_path):
    source = tmp_path / "python"  # a copy: the build writes next to it
    shutil.copytree(ROOT / "python", source,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                    str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-build-isolation",
         "--no-index", "--quiet", str(source)],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    check = subprocess.run(
        [str(python), "-c",
         "import anneal, anneal.v1.service_pb2_grpc, importlib.resources, "
         "pathlib\n"
         "print(pathlib.Path(anneal.__file__).parent)\n"
         "print(anneal.schedule_name('run-1'))\n"
         "print((pathlib.Path(anneal.__file__).parent / 'py.typed')"
         ".exists())"],
        capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    where, name, typed = check.stdout.split()
    assert where.startswith(str(venv)), where  # installed, not the source
    assert name == "schedules/run-1"
    assert typed == "True"
