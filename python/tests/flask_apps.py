"""A small Flask app on SesameSessionInterface, shared by the Flask tests."""

from __future__ import annotations

import threading
from typing import List, Tuple

from flask import Flask, jsonify, request, session

from sesame_session import SesameClient
from sesame_session.flask import SesameSessionInterface, compare_and_set, login, logout


class CountingClient(SesameClient):
    """A real client that also records each request it makes to the service (method, path)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: List[Tuple[str, str]] = []
        self._calls_lock = threading.Lock()

    def _request(self, method, path, **kwargs):
        with self._calls_lock:
            self.calls.append((method, path))
        return super()._request(method, path, **kwargs)

    def take_calls(self) -> List[Tuple[str, str]]:
        with self._calls_lock:
            calls, self.calls = self.calls, []
        return calls


def make_app(client: SesameClient, name: str = "app", **interface) -> Flask:
    app = Flask(name)
    app.session_interface = SesameSessionInterface(client, **interface)

    @app.get("/nothing")
    def nothing():
        return "no session used"

    @app.get("/read")
    def read():
        return jsonify(
            attributes=dict(session),
            id=session.id,
            principal=session.principal,
        )

    @app.post("/write")
    def write():
        for k, v in request.get_json().items():
            session[k] = v
        return jsonify(dict(session))

    @app.post("/remove/<name>")
    def remove(name):
        session.pop(name, None)
        return jsonify(dict(session))

    @app.post("/cart/<item>")
    def cart(item):
        # In-place change of a nested value: saved too.
        session.setdefault("cart", []).append(item)
        return jsonify(cart=session["cart"])

    @app.post("/login/<user>")
    def do_login(user):
        login(user)
        return jsonify(principal=session.principal, attributes=dict(session))

    @app.post("/logout")
    def do_logout():
        logout()
        return jsonify(ok=True)

    @app.post("/increment")
    def increment():
        for _ in range(100):
            cur = session.get("counter")
            swapped, now = compare_and_set("counter", cur, (cur or 0) + 1)
            if swapped:
                return jsonify(counter=now)
        return jsonify(error="too much contention"), 409

    @app.post("/cas")
    def cas():
        b = request.get_json()
        swapped, current = compare_and_set(b["name"], b["expected"], b["value"])
        return jsonify(swapped=swapped, current=current)

    return app


class Served:
    """A WSGI app served over real HTTP on a free loopback port, in a thread (werkzeug's
    threaded development server)."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Browser:
    """urllib with a cookie jar: what a browser keeps and sends, over real HTTP."""

    def __init__(self) -> None:
        import http.cookiejar
        import urllib.request

        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str):
        return next((c.value for c in self.jar if c.name == name), None)

    def call(self, method: str, url: str, body=None, headers=None):
        """(status, headers, parsed JSON or text), for every status."""
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=10) as resp:
                status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        text = raw.decode("utf-8", "replace")
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text
