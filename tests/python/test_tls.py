"""TLS and mutual TLS on the gRPC port, with certificates made here by
openssl (docs/security.md). Everything is on 127.0.0.1."""

from __future__ import annotations

import pathlib
import subprocess
import time

import grpc

from conftest import BUILD_DIR, ServerProcess

from anneal.v1 import resources_pb2, schedule_pb2, service_pb2, service_pb2_grpc

SPEC = schedule_pb2.ScheduleSpec(max_lr=0.1, constant=schedule_pb2.Constant())


def secure_stub(address, ca, cert_key=None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=pathlib.Path(ca).read_bytes(),
        private_key=pathlib.Path(cert_key[1]).read_bytes() if cert_key else None,
        certificate_chain=(pathlib.Path(cert_key[0]).read_bytes()
                           if cert_key else None))
    channel = grpc.secure_channel(address, creds)
    return channel, service_pb2_grpc.ScheduleServiceStub(channel)


def list_code(stub):
    try:
        stub.ListSchedules(service_pb2.ListSchedulesRequest(), timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def start(tmp_path, *flags) -> ServerProcess:
    server = ServerProcess(tmp_path, extra=list(flags))
    server.start()
    return server


def test_tls_handshake_and_plaintext_refused(pki, tmp_path):
    cert, key = pki["server"]
    server = start(tmp_path, "--tls_cert=%s" % cert, "--tls_key=%s" % key)
    try:
        channel, stub = secure_stub(server.address, pki["ca"])
        with channel:
            assert list_code(stub) == grpc.StatusCode.OK
        with grpc.insecure_channel(server.address) as plain:
            assert list_code(service_pb2_grpc.ScheduleServiceStub(plain)) == \
                grpc.StatusCode.UNAVAILABLE
        # A client that trusts another CA does not accept the server.
        channel, stub = secure_stub(server.address, pki["other_ca"])
        with channel:
            assert list_code(stub) == grpc.StatusCode.UNAVAILABLE
        # The clients' own options.
        import anneal
        with anneal.Client(server.address, tls_ca=str(pki["ca"])) as c:
            assert isinstance(list(c.list()), list)
        done = subprocess.run(
            [str(BUILD_DIR / "bin" / "annealctl"), "list", "--server",
             server.address, "--tls_ca", str(pki["ca"])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        assert server.stop() == 0, server.log_path.read_text()


def test_mutual_tls(pki, tmp_path):
    cert, key = pki["server"]
    server = start(tmp_path, "--tls_cert=%s" % cert, "--tls_key=%s" % key,
                   "--tls_client_ca=%s" % pki["ca"])
    try:
        channel, stub = secure_stub(server.address, pki["ca"], pki["client"])
        with channel:
            s = stub.CreateSchedule(service_pb2.CreateScheduleRequest(
                schedule_id="mtls", schedule=resources_pb2.Schedule(spec=SPEC),
                actor="typed"), timeout=10)
            # The certificate names the caller.
            assert s.timeline[0].actor == "x509:trainer-7"
            assert "typed" in s.timeline[0].reason
        # No client certificate: refused.
        channel, stub = secure_stub(server.address, pki["ca"])
        with channel:
            assert list_code(stub) == grpc.StatusCode.UNAVAILABLE
        # A client certificate from the wrong CA: refused.
        channel, stub = secure_stub(server.address, pki["ca"], pki["stranger"])
        with channel:
            assert list_code(stub) == grpc.StatusCode.UNAVAILABLE
        import anneal
        with anneal.Client(server.address, tls_ca=str(pki["ca"]),
                           tls_cert=str(pki["client"][0]),
                           tls_key=str(pki["client"][1])) as c:
            assert [x.name for x in c.list()] == ["schedules/mtls"]
        done = subprocess.run(
            [str(BUILD_DIR / "bin" / "annealctl"), "get", "mtls"],
            env={"PATH": "/usr/bin:/bin", "ANNEAL_SERVER": server.address,
                 "ANNEAL_TLS_CA": str(pki["ca"]),
                 "ANNEAL_TLS_CERT": str(pki["client"][0]),
                 "ANNEAL_TLS_KEY": str(pki["client"][1])},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        assert server.stop() == 0, server.log_path.read_text()


def test_mutual_tls_allows_a_non_loopback_listen_without_tokens(pki, tmp_path):
    cert, key = pki["server"]
    server = ServerProcess(tmp_path)
    popen = subprocess.Popen(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--listen=0.0.0.0:0", "--metrics_listen=", "--tls_cert=%s" % cert,
         "--tls_key=%s" % key, "--tls_client_ca=%s" % pki["ca"],
         "--port_file=%s" % server.port_file],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not (server.port_file.exists() and server.port_file.read_text()):
            assert popen.poll() is None, popen.stdout.read()
            time.sleep(0.01)
    finally:
        popen.terminate()
        out, _ = popen.communicate(timeout=30)
    assert popen.returncode == 0, out
    assert "every client with a certificate" in out


def test_bad_tls_files_stop_the_start(pki, tmp_path):
    cert, _ = pki["server"]
    _, other_key = pki["client"]
    done = subprocess.run(
        [str(BUILD_DIR / "bin" / "anneal-server"), "--store=memory:",
         "--listen=127.0.0.1:0", "--metrics_listen=", "--tls_cert=%s" % cert,
         "--tls_key=%s" % other_key], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60)
    assert done.returncode == 1
    assert "is not the key of the certificate" in done.stdout


def test_certificates_reload_without_a_restart(pki, tmp_path):
    cert, key = pki["server"]
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(pathlib.Path(cert).read_bytes())
    live_key.write_bytes(pathlib.Path(key).read_bytes())
    server = start(tmp_path, "--tls_cert=%s" % live_cert,
                   "--tls_key=%s" % live_key, "--tls_reload_interval=1s")
    try:
        channel, stub = secure_stub(server.address, pki["ca"])
        with channel:
            assert list_code(stub) == grpc.StatusCode.OK
        # Replace the certificate with one from another CA; new connections
        # get it once the server has read the files again.
        new_cert, new_key = pki["other_server"]
        live_key.write_bytes(pathlib.Path(new_key).read_bytes())
        live_cert.write_bytes(pathlib.Path(new_cert).read_bytes())
        while True:
            channel, stub = secure_stub(server.address, pki["other_ca"])
            with channel:
                if list_code(stub) == grpc.StatusCode.OK:
                    break
        assert server.running
    finally:
        assert server.stop() == 0, server.log_path.read_text()
