"""Fixtures for the Python client tests: the real anneal-server binary.

ANNEAL_BUILD_DIR (default: ./build next to tests/) names the CMake build to
test: its bin/anneal-server and bin/annealctl. The `anneal` package is the
source tree's python/ (its generated modules are checked in), put on sys.path
here, so scripts/test.sh needs no PYTHONPATH.

The server runs exactly as tests/server_harness.h runs it for the C++ tests:
loopback, port 0 (the real port comes back through --port_file), a temporary
SQLite database. It can be stopped and started again mid-test on the same
port and database (the outage tests); the fixture stops it with SIGTERM and
requires a clean exit (status 0).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Iterator, List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_DIR = pathlib.Path(os.environ.get("ANNEAL_BUILD_DIR", ROOT / "build"))
PYTHON_DIR = ROOT / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))
# anneal.fallback finds annealctl through it.
os.environ.setdefault("ANNEAL_BUILD_DIR", str(BUILD_DIR))


def load_example(name: str):
    """python/examples/NAME.py as a module (the examples the tests run, so
    they cannot rot), registered in sys.modules (its dataclasses look their
    module up there); loaded once."""
    import importlib.util
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "python" / "examples" / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ex():
    """python/examples/digits_sgdr.py, with deterministic torch."""
    module = load_example("digits_sgdr")
    module.deterministic()
    return module


def debian_program(program: str, package: str) -> str:
    """The path of `program`, installing Debian's `package` with apt-get
    first if it is missing (the servers tests need are installed by the
    tests themselves); fails the test if that does not work."""
    import shutil
    path = shutil.which(program)
    if path is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(
            ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y",
             "-q", "--no-install-recommends", package],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        path = shutil.which(program)
        if path is None:
            pytest.fail("cannot install Debian's %s:\n%s" %
                        (package, done.stdout[-2000:]))
    return path


def _require_build() -> None:
    if not (BUILD_DIR / "bin" / "anneal-server").exists():
        pytest.fail("no %s/bin/anneal-server: build first (cmake --build), "
                    "or set ANNEAL_BUILD_DIR" % BUILD_DIR)
    if not (PYTHON_DIR / "anneal" / "v1" / "service_pb2.py").exists():
        pytest.fail("no generated modules in %s/anneal/v1: run "
                    "scripts/gen-python-stubs.sh" % PYTHON_DIR)


class ServerProcess:
    """One anneal-server, restartable on the same port and database."""

    def __init__(self, workdir: pathlib.Path, extra: Optional[List[str]] = None):
        self.db = workdir / "anneal.db"
        self.port_file = workdir / "anneal.port"
        self.metrics_port_file = workdir / "anneal.metrics_port"
        self.log_path = workdir / "anneal.log"
        self.extra = list(extra or [])
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.port

    @property
    def metrics_port(self) -> int:
        """The telemetry port (/metrics, the status page)."""
        return int(self.metrics_port_file.read_text())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, same_port: bool = False) -> str:
        """Starts it and waits (up to 20 s) until it listens. same_port
        reuses the previous port, so existing clients reconnect."""
        _require_build()
        if self.port_file.exists():
            self.port_file.unlink()
        listen = "127.0.0.1:%d" % (self.port if same_port else 0)
        args = [str(BUILD_DIR / "bin" / "anneal-server"), "--listen=" + listen,
                "--db=%s" % self.db, "--port_file=%s" % self.port_file,
                # The default telemetry port would be shared by every
                # server the tests start.
                "--metrics_listen=127.0.0.1:0",
                "--metrics_port_file=%s" % self.metrics_port_file,
                "--shutdown_grace=2s"] + self.extra
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("anneal-server exited with %d; log:\n%s" %
                                   (self.proc.returncode,
                                    self.log_path.read_text()))
            try:
                text = self.port_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                self.port = int(text)
                return self.address
            time.sleep(0.01)
        self.kill()
        raise RuntimeError("anneal-server did not start in 20 s; log:\n%s" %
                           self.log_path.read_text())

    def stop(self) -> int:
        """SIGTERM; the exit status (0 for a clean stop)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.running:
            self.proc.kill()  # type: ignore[union-attr]
            self.proc.wait()  # type: ignore[union-attr]


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[ServerProcess]:
    """A started server; stopped with SIGTERM (exit status 0) afterwards."""
    proc = ServerProcess(tmp_path)
    proc.start()
    try:
        yield proc
    finally:
        if proc.running:
            status = proc.stop()
            assert status == 0, "anneal-server exited with %d; log:\n%s" % (
                status, proc.log_path.read_text())


@pytest.fixture
def client(server: ServerProcess):
    """An anneal.Client connected to the server fixture."""
    import anneal
    c = anneal.Client(server.address, timeout=10)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    openssl = debian_program("openssl", "openssl")
    root = tmp_path_factory.mktemp("pki")
    from pki import Pki
    good = Pki(openssl, root / "good", "good")
    other = Pki(openssl, root / "other", "other")
    return {
        "ca": good.ca,
        "server": good.issue("server", True),
        "client": good.issue("trainer-7", False),
        "other_ca": other.ca,
        "other_server": other.issue("other-server", True),
        "stranger": other.issue("stranger", False),
        "good": good,
    }
