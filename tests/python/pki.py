"""A throwaway certificate authority made by openssl at test time, and the
`pki` fixture (two CAs and their certificates) the TLS tests of the gRPC
port and of the telemetry port share: `from pki import pki`."""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from conftest import debian_program


class Pki:
    """A CA that signs certificates, in its own directory."""

    def __init__(self, openssl: str, directory: pathlib.Path, name: str):
        self.openssl = openssl
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ca_key = self.dir / ("%s-ca.key" % name)
        self.ca = self.dir / ("%s-ca.pem" % name)
        self.run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=%s test CA" % name, "-keyout", self.ca_key,
                 "-out", self.ca)

    def run(self, *args) -> None:
        subprocess.run([self.openssl] + [str(a) for a in args], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def issue(self, cn: str, server: bool):
        key = self.dir / ("%s.key" % cn)
        csr = self.dir / ("%s.csr" % cn)
        cert = self.dir / ("%s.pem" % cn)
        ext = self.dir / ("%s.ext" % cn)
        ext.write_text(
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            if server else "extendedKeyUsage=clientAuth\n")
        self.run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                 "-keyout", key, "-out", csr)
        self.run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                 self.ca_key, "-CAcreateserial", "-days", "2", "-out", cert,
                 "-extfile", ext)
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    openssl = debian_program("openssl", "openssl")
    root = tmp_path_factory.mktemp("pki")
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
