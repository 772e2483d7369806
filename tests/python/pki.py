"""A throwaway certificate authority made by openssl at test time (the
`pki` fixture in conftest.py makes two, for the TLS tests of the gRPC port
and of the telemetry port)."""

from __future__ import annotations

import pathlib
import subprocess


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
