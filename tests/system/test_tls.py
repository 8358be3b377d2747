#!/usr/bin/env python3
"""test_tls.py - the receivers' and respan_api's `tls` blocks (issue 14):
misconfiguration caught by validate, and clients that do TLS badly.

Certificates are made here with the openssl command (a CA, a server
certificate for localhost and 127.0.0.1, a client certificate, one that
expired in 2021, and a key of another pair).
  1. validate (and start-up) fail with one line naming the file for: a
     missing cert_file, a key that does not match the certificate, an
     expired certificate, a file that is not PEM, min_version "1.1",
     cert_file without key_file; and pass for a good block.
  2. One collector, OTLP/gRPC and OTLP/HTTP over TLS, respan_api over
     HTTPS with mutual TLS. While hostile clients hit the gRPC port -
     random bytes, a plain-text HTTP/2 preface, a TLS ClientHello cut in
     half and then silence, a ClientHello offering only http/1.1 by ALPN -
     a normal TLS client (grpcio) is served every call, each bad
     connection is closed by the collector (the silent one after the
     10 s handshake limit), and the failures are counted
     (respan_receiver_tls_handshake_failures). The HTTP port serves
     HTTPS and closes a plain-text request.
  3. respan_api: a request with the client certificate is answered 200;
     one without gets 401.
  4. SIGHUP with the config unchanged, after the certificate files were
     replaced by ones from a second CA and a token was added to the tokens
     file: connections made before keep working - a kept-alive HTTPS
     connection and a grpcio channel that trust only the first CA (so a
     reconnect could not succeed) are answered again - while new
     connections get the new certificate (a client trusting only the first
     CA now fails) and the new token is accepted, the old one too.

Python 3 standard library, openssl, and python3-grpcio (through
grpc_clients.py's interpreter) for the normal client.
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import certs  # noqa: E402
import process  # noqa: E402
from collector import COLLECTOR_BIN, Collector, Runner, free_ports, pipeline_config  # noqa: E402
from grpc_clients import GRPCIO_PYTHON  # noqa: E402

HANDSHAKE_LIMIT_S = 10


def make_certs(d):
    certs.make_server(d)
    certs.sign(d, "ca", "client")
    # expired: signed by a throwaway CA database with fixed dates in the past
    os.makedirs(os.path.join(d, "old"), exist_ok=True)
    with open(os.path.join(d, "old", "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=c\n[c]\ndatabase=%s\nnew_certs_dir=%s\nserial=%s\n"
                "default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n"
                % (os.path.join(d, "old", "index.txt"), os.path.join(d, "old"),
                   os.path.join(d, "old", "serial")))
    open(os.path.join(d, "old", "index.txt"), "w").close()
    with open(os.path.join(d, "old", "serial"), "w") as f:
        f.write("01\n")
    certs.openssl(d, "ca", "-batch", "-config", "old/ca.cnf", "-cert", "ca.pem", "-keyfile",
                  "ca.key", "-in", "server.csr", "-out", "expired.pem",
                  "-startdate", "20200101000000Z", "-enddate", "20210101000000Z")
    with open(os.path.join(d, "junk.pem"), "w") as f:
        f.write("this is not a certificate\n")


def grpc_tls_config(ports, d, out_path, tls):
    return pipeline_config(ports, {}, {"file": "{ path: %s }" % json.dumps(out_path)},
                           pipeline_processors=[], grpc_extra={"tls": tls})


def validate(path):
    r = subprocess.run([COLLECTOR_BIN, "validate", "--config", path], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def bad_files_fail_validate(col):
    d = col.dir
    p = lambda name: json.dumps(os.path.join(d, name))  # noqa: E731
    cases = [
        ("good", "{ cert_file: %s, key_file: %s }" % (p("server.pem"), p("server.key")), None),
        ("missing", "{ cert_file: %s, key_file: %s }" % (p("nope.pem"), p("server.key")),
         "cannot open %s" % os.path.join(d, "nope.pem")),
        ("mismatch", "{ cert_file: %s, key_file: %s }" % (p("server.pem"), p("client.key")),
         "the key in %s does not match the certificate in %s"
         % (os.path.join(d, "client.key"), os.path.join(d, "server.pem"))),
        ("expired", "{ cert_file: %s, key_file: %s }" % (p("expired.pem"), p("server.key")),
         "the certificate in %s expired on" % os.path.join(d, "expired.pem")),
        ("not pem", "{ cert_file: %s, key_file: %s }" % (p("junk.pem"), p("server.key")),
         "%s holds no PEM certificate" % os.path.join(d, "junk.pem")),
        ("version", "{ cert_file: %s, key_file: %s, min_version: \"1.1\" }"
         % (p("server.pem"), p("server.key")), "min_version must be"),
        ("no key", "{ cert_file: %s }" % p("server.pem"), "needs both cert_file and key_file"),
    ]
    ports = {"grpc": 1, "http": 2, "health": 3, "metrics": 4}
    for name, tls, want in cases:
        path = os.path.join(d, "validate.yaml")
        with open(path, "w") as f:
            f.write(grpc_tls_config(ports, d, os.path.join(d, "v.jsonl"), tls))
        rc, out = validate(path)
        if want is None:
            assert rc == 0, "%s: %s" % (name, out)
            continue
        assert rc != 0, "%s validated" % name
        assert len(out.splitlines()) == 1, "%s: not one line: %r" % (name, out)
        assert want in out, "%s: %r lacks %r" % (name, out, want)
        assert "validate.yaml:" in out and "tls" in out, "%s: no file:line:key: %r" % (name, out)


class TlsCollector(Collector):
    def start_tls(self):
        grpc, http_port, health, metrics, api = free_ports(5)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics,
                      "api": api}
        d = self.dir
        tls = "{ cert_file: %s, key_file: %s }" % (json.dumps(os.path.join(d, "server.pem")),
                                                  json.dumps(os.path.join(d, "server.key")))
        text = pipeline_config(self.ports, {}, {"file": "{ path: %s }" % json.dumps(self.out_path)},
                               pipeline_processors=[], grpc_extra={"tls": tls},
                               http_extra={"tls": tls})
        api_tls = "{ cert_file: %s, key_file: %s, client_ca_file: %s }" % (
            json.dumps(os.path.join(d, "server.pem")), json.dumps(os.path.join(d, "server.key")),
            json.dumps(os.path.join(d, "ca.pem")))
        text = text.replace("extensions:\n", "extensions:\n  respan_api: { endpoint: \"127.0.0.1:%d\","
                            " directory: %s, tls: %s }\n" % (api, json.dumps(d), api_tls), 1)
        self.tokens_path = os.path.join(d, "tokens.txt")
        with open(self.tokens_path, "w") as f:
            f.write("first-token-1234 first\n")
        text = text.replace("      http: {", "      http: {", 1)
        lines = text.split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("      http:")) + 1
        lines[at:at] = ["    auth: { tokens_file: %s }" % json.dumps(self.tokens_path)]
        text = "\n".join(lines)
        text = text.replace("  extensions: [health_check]", "  extensions: [health_check, respan_api]")
        with open(self.config_path, "w") as f:
            f.write(text)
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path], self.stderr_path)
        self.wait_healthy(15)
        return self


GRPCIO_SCRIPT = r"""
import grpc, sys, time, json
ca = open(sys.argv[2], 'rb').read()
ch = grpc.secure_channel('localhost:%s' % sys.argv[1], grpc.ssl_channel_credentials(ca))
m = ch.unary_unary('/opentelemetry.proto.collector.trace.v1.TraceService/Export',
                   request_serializer=None, response_deserializer=None)
md = [('authorization', 'Bearer ' + sys.argv[4])] if len(sys.argv) > 4 else None
ok = bad = 0
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        m(b'', timeout=5, metadata=md); ok += 1
    except grpc.RpcError as e:
        bad += 1; print(e.code(), e.details(), file=sys.stderr)
    time.sleep(0.1)
print(json.dumps({"ok": ok, "bad": bad}))
"""

# One channel, one call per line read from stdin; answers OK or the code.
GRPCIO_STEP_SCRIPT = r"""
import grpc, sys
ca = open(sys.argv[2], 'rb').read()
ch = grpc.secure_channel('localhost:%s' % sys.argv[1], grpc.ssl_channel_credentials(ca))
m = ch.unary_unary('/opentelemetry.proto.collector.trace.v1.TraceService/Export',
                   request_serializer=None, response_deserializer=None)
for line in sys.stdin:
    try:
        m(b'', timeout=10, metadata=[('authorization', 'Bearer ' + line.strip())])
        print('OK', flush=True)
    except grpc.RpcError as e:
        print(e.code().name, flush=True)
"""


def closed_by_server(sock, within):
    """True when the server closes (or resets) the connection within `within` s."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def client_hello(alpn):
    """The first flight of a TLS client offering `alpn`, made with the ssl
    module over memory BIOs."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def hostile_clients_do_not_starve_a_normal_one(col):
    port = col.ports["grpc"]
    normal = subprocess.Popen([GRPCIO_PYTHON, "-c", GRPCIO_SCRIPT, str(port),
                               os.path.join(col.dir, "ca.pem"), str(HANDSHAKE_LIMIT_S + 4),
                               "first-token-1234"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hello = client_hello(["h2"])
    attacks = {
        "random bytes": os.urandom(4096),
        "plain h2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 9,
        "http/1.1 only by ALPN": client_hello(["http/1.1"]),
    }
    socks = {}
    for name, data in attacks.items():
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(data)
        socks[name] = s
    silent = socket.create_connection(("127.0.0.1", port))
    silent.sendall(hello[:len(hello) // 2])
    t0 = time.monotonic()
    for name, s in socks.items():
        assert closed_by_server(s, 5), "%s: the connection was not closed" % name
        s.close()
    assert closed_by_server(silent, HANDSHAKE_LIMIT_S + 5), "a half ClientHello was kept open"
    waited = time.monotonic() - t0
    silent.close()
    assert waited >= HANDSHAKE_LIMIT_S - 1, "closed after %.1fs, before the limit" % waited
    out, err = normal.communicate(timeout=60)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["ok"] > 0 and res["bad"] == 0, "the normal client: %r %s" % (res, err[-500:])
    failures = col.metric_value("respan_receiver_tls_handshake_failures", 'transport="grpc"')
    assert failures is not None and failures >= 4, "handshake failures counted: %r" % failures


def http_port_is_https_only(col):
    ctx = ssl.create_default_context(cafile=os.path.join(col.dir, "ca.pem"))
    with socket.create_connection(("127.0.0.1", col.ports["http"])) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Authorization: Bearer first-token-1234\r\n"
                      b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    with socket.create_connection(("127.0.0.1", col.ports["http"])) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert closed_by_server(s, 10), "plain HTTP on the TLS port was kept open"


def api_needs_a_client_certificate(col):
    url_path = "/api/request-logs/summary/"
    for with_cert, want in [(True, 200), (False, 401)]:
        ctx = ssl.create_default_context(cafile=os.path.join(col.dir, "ca.pem"))
        if with_cert:
            ctx.load_cert_chain(os.path.join(col.dir, "client.pem"),
                                os.path.join(col.dir, "client.key"))
        import http.client
        conn = http.client.HTTPSConnection("localhost", col.ports["api"], context=ctx, timeout=10)
        conn.request("GET", url_path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        assert resp.status == want, "client cert %s: %d %r" % (with_cert, resp.status, body[:200])


def https_post(conn, token):
    conn.request("POST", "/v1/traces", b"{}", {"Content-Type": "application/json",
                                              "Authorization": "Bearer " + token})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def sighup_keeps_connections(col):
    import http.client
    d = col.dir
    old_ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    kept = http.client.HTTPSConnection("localhost", col.ports["http"], context=old_ctx,
                                       timeout=10)
    assert https_post(kept, "first-token-1234") == 200
    step = subprocess.Popen([GRPCIO_PYTHON, "-c", GRPCIO_STEP_SCRIPT, str(col.ports["grpc"]),
                             os.path.join(d, "ca.pem")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def grpc_call(token):
        step.stdin.write(token + "\n")
        step.stdin.flush()
        return step.stdout.readline().strip()

    try:
        assert grpc_call("first-token-1234") == "OK"
        # A second CA, its certificate in place of the first's, and a new token.
        certs.make_ca(d, "ca2", "second CA")
        certs.sign(d, "ca2", "server", certs.SERVER_SAN)  # the same key, the second CA
        with open(col.tokens_path, "a") as f:
            f.write("second-token-5678 second\n")
        col.proc.send_signal(__import__("signal").SIGHUP)
        deadline = time.monotonic() + 15
        while "read again, connections kept" not in col.stderr():
            assert time.monotonic() < deadline, "no in-place reload logged"
            time.sleep(0.1)
        # Established connections: still served, with the first certificate.
        assert https_post(kept, "second-token-5678") == 200, "the kept connection lost"
        assert grpc_call("second-token-5678") == "OK", "the grpc channel lost its connection"
        assert grpc_call("first-token-1234") == "OK"
        assert grpc_call("unknown-token-000") == "UNAUTHENTICATED"
        # New connections: the second certificate.
        fresh = http.client.HTTPSConnection("localhost", col.ports["http"], context=old_ctx,
                                            timeout=10)
        try:
            https_post(fresh, "first-token-1234")
            raise AssertionError("a new connection still got the first certificate")
        except ssl.SSLError:
            pass
        new_ctx = ssl.create_default_context(cafile=os.path.join(d, "ca2.pem"))
        fresh = http.client.HTTPSConnection("localhost", col.ports["http"], context=new_ctx,
                                            timeout=10)
        assert https_post(fresh, "second-token-5678") == 200
        fresh.close()
    finally:
        kept.close()
        step.stdin.close()
        step.wait(timeout=10)


def main():
    col = TlsCollector("tls")
    make_certs(col.dir)
    runner = Runner(col)
    runner.case("validate names the bad file in one line", bad_files_fail_validate, col)
    col.start_tls()
    try:
        runner.case("hostile TLS clients: closed, counted; a normal client served",
                    hostile_clients_do_not_starve_a_normal_one, col)
        runner.case("OTLP/HTTP over TLS; plain text closed", http_port_is_https_only, col)
        runner.case("respan_api with mutual TLS", api_needs_a_client_certificate, col)
        runner.case("SIGHUP: new certificate and tokens, connections kept",
                    sighup_keeps_connections, col)
    finally:
        if col.alive():
            col.stop()
    runner.finish()


if __name__ == "__main__":
    main()
