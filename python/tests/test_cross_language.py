"""One login shared by a Flask app and the Rust demo, end to end with real processes.

redis-server, `sesame serve --cookie-name sesame_demo`, `sesame demo --instances 2` on the
same Redis with the same token secret, the Flask app of examples/flask-shared (in a thread)
and its proxy (in a thread): one browser (urllib with a cookie jar) on the proxy's port.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import pytest

from conftest import REPO, SERVICE_KEY, TOKEN_SECRET, Proc, sesame_bin, start_service
from flask_apps import Browser, Served

EXAMPLE = REPO / "examples" / "flask-shared"


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(redis_port):
    """The proxy's base URL, with the service, the demo, the Flask app and the proxy up."""
    service, service_url = start_service(redis_port, "--cookie-name", "sesame_demo")
    env = dict(os.environ, SESAME_TOKEN_SECRET=TOKEN_SECRET)
    demo = Proc(
        [
            sesame_bin(),
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--instances",
            "2",
            "--store",
            f"redis://127.0.0.1:{redis_port}",
        ],
        env=env,
    )
    flask_app = proxy = None
    try:
        demo_url = demo.wait_for(r"open (http://\S+?)/?\s").group(1)
        app_module = _load("flask_shared_app", "app.py")
        proxy_module = _load("flask_shared_proxy", "proxy.py")
        flask_app = Served(app_module.create_app(service_url, SERVICE_KEY))
        proxy = proxy_module.ProxyServer(("127.0.0.1", 0), flask_app.url, demo_url)
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{proxy.server_port}"
    finally:
        if proxy is not None:
            proxy.shutdown()
            proxy.server_close()
        if flask_app is not None:
            flask_app.stop()
        demo.stop()
        service.stop()


def replay(site: str, path: str, token: str, method: str = "GET"):
    """A request carrying exactly this cookie (a copy of an old one), without a jar."""
    b = Browser()
    return b.call(method, site + path, headers={"Cookie": f"sesame_demo={token}"})


def test_login_through_flask_is_known_to_rust_and_logout_through_rust_ends_it(site):
    b = Browser()
    # Before: neither side knows the browser.
    assert b.call("GET", site + "/flask/me")[0] == 401
    assert b.call("GET", site + "/api/me")[0] == 401

    status, _, body = b.call("POST", site + "/flask/login", {"username": "alice"})
    assert status == 200 and body == {"user": "alice", "app": "flask"}
    token = b.cookie("sesame_demo")
    assert token and len(token) == 68

    # The Rust demo (both of its instances, round robin) knows alice.
    for _ in range(2):
        status, headers, body = b.call("GET", site + "/api/me")
        assert status == 200 and body["user"] == "alice", body
    served_by = {b.call("GET", site + "/api/me")[1]["X-Served-By"] for _ in range(2)}
    assert served_by == {"app-1", "app-2"}
    # The visit counter is shared: four visits on the Rust side, the fifth in Flask.
    status, _, body = b.call("GET", site + "/flask/me")
    assert status == 200 and body["user"] == "alice" and body["visits"] == 5
    assert b.call("GET", site + "/api/me")[2]["visits"] == 6
    # The cart the Rust demo keeps is seen by Flask.
    assert b.call("POST", site + "/api/cart", {"item": "tea"})[2] == {"cart": ["tea"]}
    assert b.call("GET", site + "/flask/me")[2]["cart"] == ["tea"]

    token = b.cookie("sesame_demo")
    status, _, body = b.call("POST", site + "/api/logout")
    assert status == 200 and body == {"ok": True}
    assert b.cookie("sesame_demo") is None
    status, _, body = b.call("GET", site + "/flask/me")
    assert status == 401 and body == {"error": "not logged in"}
    # The old cookie, replayed, is refused by both.
    assert replay(site, "/flask/me", token)[0] == 401
    assert replay(site, "/api/me", token)[0] == 401


def test_login_through_rust_is_known_to_flask_and_logout_through_flask_ends_it(site):
    b = Browser()
    # An anonymous cart made in Rust, kept through the login.
    b.call("POST", site + "/api/cart", {"item": "coffee"})
    status, _, body = b.call("POST", site + "/api/login", {"username": "bob"})
    assert status == 200 and body["user"] == "bob"
    status, _, body = b.call("GET", site + "/flask/me")
    assert status == 200 and body["user"] == "bob" and body["cart"] == ["coffee"]
    token = b.cookie("sesame_demo")
    assert b.call("POST", site + "/flask/logout")[2] == {"ok": True}
    assert b.cookie("sesame_demo") is None
    assert b.call("GET", site + "/api/me")[0] == 401
    assert replay(site, "/api/me", token)[0] == 401
    assert replay(site, "/flask/me", token)[0] == 401


def test_an_anonymous_rust_cart_is_kept_by_a_flask_login(site):
    b = Browser()
    b.call("POST", site + "/api/cart", {"item": "apple"})
    anonymous = b.cookie("sesame_demo")
    b.call("POST", site + "/flask/login", {"username": "carol"})
    assert b.cookie("sesame_demo") != anonymous  # rotated at login
    status, _, body = b.call("GET", site + "/api/me")
    assert status == 200 and body["user"] == "carol" and body["cart"] == ["apple"]
    assert b.call("GET", site + "/api/sessions")[0] == 200
    # The anonymous token died at the login.
    assert replay(site, "/api/me", anonymous)[0] == 401


def test_bad_username_is_400(site):
    status, _, body = Browser().call("POST", site + "/flask/login", {"username": "no spaces"})
    assert status == 400 and "username" in body["error"]
