"""The telemetry port (/metrics, the status page) behind tokens and HTTPS:
--metrics_require_token and --metrics_tls (docs/security.md). Everything is
on 127.0.0.1; certificates are made here by openssl."""

from __future__ import annotations

import base64
import hashlib
import pathlib
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import BUILD_DIR, ServerProcess

TOKENS = {"reader": "tok-telemetry-r", "operator": "tok-telemetry-o",
          "vision": "tok-telemetry-v", "gone": "tok-telemetry-gone"}
ROLE = {"reader": "reader", "operator": "operator", "vision": "operator",
        "gone": "reader"}


def tokens_text(names) -> str:
    lines = []
    for n in names:
        digest = hashlib.sha256(TOKENS[n].encode()).hexdigest()
        selector = " team=vision" if n == "vision" else ""
        lines.append("%s %s %s%s" % (n, ROLE[n], digest, selector))
    return "\n".join(lines) + "\n"


def get(url, headers=None, context=None):
    """(status, headers, body) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def bearer(name):
    return {"Authorization": "Bearer " + TOKENS[name]}


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def sighup_and_wait(server: ServerProcess) -> None:
    before = server.log_path.read_text().count("reload: ")
    server.proc.send_signal(signal.SIGHUP)
    while server.log_path.read_text().count("reload: ") == before:
        time.sleep(0.01)


def test_tokens_guard_every_page(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(tokens_text(TOKENS))
    server = ServerProcess(tmp_path, extra=["--tokens_file=%s" % tokens,
                                            "--metrics_require_token"])
    server.start()
    try:
        base = "http://127.0.0.1:%d" % server.metrics_port
        for path in ("/metrics", "/", "/schedules/x"):
            status, headers, body = get(base + path)
            assert status == 401, (path, body)
            # A browser asks for a user and password (the token).
            assert headers["WWW-Authenticate"].startswith("Basic ")
            assert "token" in body
        status, _, body = get(base + "/metrics", bearer("reader"))
        assert status == 200 and "anneal_build_info" in body
        status, _, body = get(base + "/", basic("anyone", TOKENS["operator"]))
        assert status == 200 and "<html" in body.lower()
        assert get(base + "/metrics", {"Authorization": "Bearer nope"})[0] == 401
        assert get(base + "/metrics", basic("reader", "nope"))[0] == 401
        assert get(base + "/metrics", {"Authorization": "Basic !!!"})[0] == 401
        assert get(base + "/metrics", {"Authorization": "Digest x"})[0] == 401
        # A token limited to a label may not see every schedule.
        status, _, body = get(base + "/metrics", bearer("vision"))
        assert status == 403 and "team=vision" in body
        # A token removed from the file stops working at the reload.
        assert get(base + "/metrics", bearer("gone"))[0] == 200
        tokens.write_text(tokens_text(["reader", "operator", "vision"]))
        sighup_and_wait(server)
        assert get(base + "/metrics", bearer("gone"))[0] == 401
        assert get(base + "/metrics", bearer("reader"))[0] == 200
        # Tokens are never logged.
        log = server.log_path.read_text()
        assert all(t not in log for t in TOKENS.values())
    finally:
        assert server.stop() == 0, server.log_path.read_text()


def https_context(ca):
    context = ssl.create_default_context(cafile=str(ca))
    return context


def test_https_and_certificate_reload(pki, tmp_path):
    cert, key = pki["server"]
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(pathlib.Path(cert).read_bytes())
    live_key.write_bytes(pathlib.Path(key).read_bytes())
    server = ServerProcess(tmp_path, extra=[
        "--tls_cert=%s" % live_cert, "--tls_key=%s" % live_key,
        "--tls_reload_interval=1s", "--metrics_tls"])
    server.start()
    try:
        port = server.metrics_port
        url = "https://127.0.0.1:%d/metrics" % port
        status, _, body = get(url, context=https_context(pki["ca"]))
        assert status == 200 and "anneal_build_info" in body
        assert "start: telemetry on https://" in server.log_path.read_text()
        # Plain HTTP gets no page.
        with pytest.raises(Exception):
            get("http://127.0.0.1:%d/metrics" % port)
        # A client that does not trust the CA is refused.
        with pytest.raises(urllib.error.URLError):
            get(url, context=https_context(pki["other_ca"]))
        # Replaced files serve new connections, with no restart.
        new_cert, new_key = pki["other_server"]
        live_key.write_bytes(pathlib.Path(new_key).read_bytes())
        live_cert.write_bytes(pathlib.Path(new_cert).read_bytes())
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, _ = get(url, context=https_context(pki["other_ca"]))
                if status == 200:
                    break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the new pair never served"
                time.sleep(0.2)
        # A broken file keeps the last good pair in service.
        live_cert.write_text("not a certificate\n")
        time.sleep(1.5)
        status, _, _ = get(url, context=https_context(pki["other_ca"]))
        assert status == 200
        assert server.running
        # A client that connects and never says a word (its handshake
        # waits for up to 30 s) does not hold up a clean stop.
        silent = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.2)
        assert server.stop() == 0, server.log_path.read_text()
        silent.close()
    finally:
        if server.running:
            assert server.stop() == 0, server.log_path.read_text()


def run_server(args, tmp_path):
    return subprocess.run(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--listen=127.0.0.1:0", "--port_file=%s" % (tmp_path / "port")]
        + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60)


def test_flags_that_need_another(tmp_path):
    done = run_server(["--metrics_require_token"], tmp_path)
    assert done.returncode == 1
    assert "--metrics_require_token: needs --tokens_file" in done.stdout
    done = run_server(["--metrics_tls"], tmp_path)
    assert done.returncode == 1
    assert "--metrics_tls: needs --tls_cert and --tls_key" in done.stdout
    # A non-loopback telemetry port is refused without a token or
    # --metrics_public, and the message names the way out.
    done = run_server(["--metrics_listen=0.0.0.0:0"], tmp_path)
    assert done.returncode == 1
    assert "--metrics_require_token" in done.stdout


def test_idle_connections_do_not_hold_the_port(tmp_path):
    """Connections that send nothing hold a thread each only until
    --metrics_request_timeout: with every thread held, a scrape is answered
    once they are closed, well within Prometheus's 10 s scrape timeout."""
    server = ServerProcess(tmp_path, extra=["--metrics_threads=2",
                                            "--metrics_request_timeout=1s"])
    server.start()
    idle = []
    try:
        idle = [socket.create_connection(("127.0.0.1", server.metrics_port))
                for _ in range(2)]
        time.sleep(0.2)  # both accepted, both threads waiting on them
        url = "http://127.0.0.1:%d/metrics" % server.metrics_port
        # 10 s was civetweb's own timeout: a 5 s client would get nothing.
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
            assert "anneal_build_info" in r.read().decode()
        for s in idle:  # the server closed them
            s.settimeout(5)
            assert s.recv(1) == b""
    finally:
        for s in idle:
            s.close()
        assert server.stop() == 0


def test_telemetry_port_flags_have_floors(tmp_path):
    for flag, want in (("--metrics_threads=0", "--metrics_threads: must be >= 1"),
                       ("--metrics_request_timeout=10ms",
                        "--metrics_request_timeout: must be >= 100ms")):
        run = subprocess.run(
            [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
             "--listen=127.0.0.1:0", flag], capture_output=True, text=True,
            timeout=30)
        assert run.returncode == 1 and want in run.stderr, run.stderr
