"""certs.py - test certificates made with the openssl command, for the tests
and benchmarks that speak TLS (tests/system/test_tls.py,
test_otlp_exporter_tls.py, test_respan_tls.py, bench/soak.py).

Every file goes into the directory given, named after the `name` passed:
NAME.key, NAME.pem (and NAME.csr for a signed certificate). Keys are RSA
2048, certificates valid for two days. Python 3 standard library.
"""

import os
import subprocess

SERVER_SAN = "DNS:localhost,IP:127.0.0.1"


def openssl(d, *args):
    """Runs openssl in directory d; raises with its stderr when it fails."""
    r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args[:2]), r.stderr.strip()))


def make_ca(d, name="ca", cn="respan-collector test CA"):
    """A self-signed CA; the path of its certificate."""
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".pem", "-days", "2", "-subj", "/CN=" + cn)
    return os.path.join(d, name + ".pem")


def sign(d, ca, name, san=None):
    """NAME.pem: NAME.csr (made first when missing) signed by CA (a name
    given to make_ca), with subjectAltName `san` when given."""
    if not os.path.exists(os.path.join(d, name + ".csr")):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
                name + ".csr", "-subj", "/CN=" + name)
    ext = []
    if san:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        ext = ["-extfile", name + ".ext"]
    openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", *ext)
    return os.path.join(d, name + ".pem")


def make_server(d, san=SERVER_SAN):
    """A CA (ca.pem) and a server certificate signed by it (server.pem,
    server.key); their paths (ca, cert, key)."""
    ca = make_ca(d)
    cert = sign(d, "ca", "server", san)
    return ca, cert, os.path.join(d, "server.key")
