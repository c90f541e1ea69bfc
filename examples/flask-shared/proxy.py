"""A reverse proxy on one port: `/flask/...` goes to the Flask app, everything else to the
`sesame demo` balancer. Standard library only.

One port (one host for the browser) is what makes the two apps share the cookie. Headers pass
through both ways, `Cookie` and every `Set-Cookie` included; the client's address is appended
to `X-Forwarded-For`. Bodies are streamed, so the demo's event feed works through it too.

    python proxy.py --listen 127.0.0.1:8000 --flask http://127.0.0.1:5000 --demo http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import http.client
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Tuple

# Hop-by-hop headers (RFC 9110, 7.6.1): they describe one connection and are not forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


def _origin(url: str) -> Tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"an upstream is an http:// URL: {url!r}")
    return u.hostname, u.port or 80


class ProxyHandler(BaseHTTPRequestHandler):
    # HTTP/1.0 towards the client: each answer ends with the connection, so a body of unknown
    # length (a stream) needs no chunking.
    protocol_version = "HTTP/1.0"
    server: "ProxyServer"

    def _forward(self) -> None:
        path = self.path
        if not path.startswith("/"):
            self.send_error(400, "only origin-form request targets")
            return
        is_flask = path == "/flask" or path.startswith(("/flask/", "/flask?"))
        host, port = self.server.flask if is_flask else self.server.demo
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = []
        for name, value in self.headers.items():
            if name.lower() in HOP_BY_HOP or name.lower() in ("host", "content-length"):
                continue
            if name.lower() == "x-forwarded-for":
                continue
            headers.append((name, value))
        forwarded = self.headers.get_all("X-Forwarded-For") or []
        headers.append(("X-Forwarded-For", ", ".join([*forwarded, self.client_address[0]])))
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.headers.get("Host") or f"{host}:{port}")
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            self.send_error(502, f"upstream {host}:{port} unreachable: {e}")
            return
        try:
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() in HOP_BY_HOP:
                    continue
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            pass  # the client went away
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        if self.server.verbose:
            super().log_message(format, *args)


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listen: Tuple[str, int], flask_url: str, demo_url: str, verbose=False):
        self.flask = _origin(flask_url)
        self.demo = _origin(demo_url)
        self.verbose = verbose
        super().__init__(listen, ProxyHandler)


def main() -> None:
    parser = argparse.ArgumentParser(description="/flask/... to Flask, the rest to the demo")
    parser.add_argument("--listen", default="127.0.0.1:8000", help="host:port")
    parser.add_argument("--flask", default="http://127.0.0.1:5000", help="the Flask app")
    parser.add_argument("--demo", default="http://127.0.0.1:8080", help="the sesame demo")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = ProxyServer((host, int(port)), args.flask, args.demo, verbose=True)
    print(f"proxy on http://{host}:{server.server_port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
