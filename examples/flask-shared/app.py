"""A Flask app that shares its login with `sesame demo` (Rust) through `sesame serve`.

It uses the demo's cookie (`sesame_demo`, not Secure, as the demo sends it over plain HTTP), so
a browser that logged in on one side is logged in on the other, and a logout on either side
ends the session for both. Its routes:

- `POST /flask/login` with `{"username": "..."}`: logs in (new token in the cookie);
- `GET /flask/me`: the user, the cart the Rust demo keeps, and the visit counter that both
  apps increment; `401` when not logged in;
- `POST /flask/logout`: ends the session everywhere.

Run it (see README.md beside this file for the whole scenario):

    SESAME_SERVICE_URL=http://127.0.0.1:7700 SESAME_SERVICE_KEY=... \
        python app.py --listen 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import os
import re

from flask import Flask, jsonify, request, session

from sesame_session import SesameClient
from sesame_session.flask import SesameSessionInterface, compare_and_set, login, logout

USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def create_app(service_url: str, service_key: str) -> Flask:
    app = Flask(__name__)
    client = SesameClient(service_url, service_key=service_key)
    app.session_interface = SesameSessionInterface(
        client, cookie_name="sesame_demo", secure=False
    )

    @app.post("/flask/login")
    def flask_login():
        body = request.get_json(silent=True) or {}
        username = body.get("username")
        if not isinstance(username, str) or not USERNAME.fullmatch(username):
            return jsonify(error="username: 1 to 64 letters, digits or . _ @ -"), 400
        login(username)
        return jsonify(user=username, app="flask")

    @app.get("/flask/me")
    def flask_me():
        if session.principal is None:
            return jsonify(error="not logged in"), 401
        # The same counter the Rust demo's /api/me increments, changed atomically so that
        # requests to both apps at once all count.
        while True:
            seen = session.get("visits")
            swapped, visits = compare_and_set("visits", seen, (seen or 0) + 1)
            if swapped:
                break
        return jsonify(
            user=session.principal,
            app="flask",
            visits=visits,
            cart=session.get("cart", []),
            session_id=session.id,
        )

    @app.post("/flask/logout")
    def flask_logout():
        logout()
        return jsonify(ok=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:5000", help="host:port")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    url = os.environ.get("SESAME_SERVICE_URL", "http://127.0.0.1:7700")
    key = os.environ.get("SESAME_SERVICE_KEY")
    if not key:
        raise SystemExit("set SESAME_SERVICE_KEY (the key sesame serve was started with)")
    create_app(url, key).run(host=host, port=int(port), threaded=True)


if __name__ == "__main__":
    main()
