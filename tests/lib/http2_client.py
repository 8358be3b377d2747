#!/usr/bin/python3
"""http2_client.py - an OTLP/HTTP client over TLS for the tests, on httpx:
HTTP/2 when the server agrees to it by ALPN (httpx with h2, the pure-Python
HTTP/2 implementation), or HTTP/1.1 with --http1. Run under Debian's
/usr/bin/python3 (python3-httpx, python3-h2), as tests/system/test_http2.py
does.

  http2_client.py --url https://localhost:PORT --ca CA.pem
                  [--cert C.pem --key K.pem] [--http1]

reads one request per line of stdin, a JSON object
  {"method": "POST", "path": "/v1/traces", "headers": {...}, "body_b64": "...",
   "parallel": N}
and answers each with one line: a JSON list of N answers (1 by default; N
copies of the request are sent at once, as streams of the one connection)
  {"status": 200, "version": "HTTP/2", "headers": {...}, "body_b64": "..."}
or {"error": "..."} when the request could not be made (e.g. a handshake
refused). Every request of a run goes over the same client, so over the
same connection while the server keeps it open. Parallel requests are
coroutines of one asyncio loop (httpx's way to multiplex): httpx's HTTP/2
shared by threads corrupts its TLS stream (encode/httpx#3002: the server
then rightly answers bad_record_mac).
"""

import argparse
import asyncio
import base64
import json
import sys

import httpx


async def one(client, req):
    try:
        r = await client.request(req.get("method", "POST"), req["path"],
                                 headers=req.get("headers", {}),
                                 content=base64.b64decode(req.get("body_b64", "")))
        return {"status": r.status_code, "version": r.http_version,
                "headers": {k.lower(): v for k, v in r.headers.items()},
                "body_b64": base64.b64encode(r.content).decode()}
    except Exception as e:  # noqa: BLE001 - reported to the test
        return {"error": "%s: %s" % (type(e).__name__, e)}


async def serve(a):
    cert = (a.cert, a.key) if a.cert else None
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(http2=not a.http1, http1=True, verify=a.ca, cert=cert,
                                 limits=limits, base_url=a.url, timeout=30) as client:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            if not line.strip():
                continue
            req = json.loads(line)
            n = int(req.get("parallel", 1))
            answers = await asyncio.gather(*[one(client, req) for _ in range(n)])
            print(json.dumps(answers), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--http1", action="store_true")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
