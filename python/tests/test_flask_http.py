"""SesameSessionInterface over real HTTP: Flask apps served by werkzeug in threads, a urllib
client with a cookie jar, a real service and Redis."""

from __future__ import annotations

import re
import threading

import pytest

from conftest import SERVICE_KEY, start_redis, start_service, unique
from flask_apps import Browser, Served, make_app
from sesame_session import SesameClient, Unauthenticated

NAME = "sesame_flask"
COOKIE = re.compile(rf"^{NAME}=([A-Za-z0-9_-]{{68}}); Path=/; HttpOnly; SameSite=Lax$")


def plain_app(url: str, name: str = "app"):
    """Cookies without Secure, so that urllib's jar sends them over plain HTTP."""
    return make_app(
        SesameClient(url, service_key=SERVICE_KEY), name=name, cookie_name=NAME, secure=False
    )


@pytest.fixture()
def served(service_url):
    s = Served(plain_app(service_url))
    yield s
    s.stop()


def test_session_over_http(served, client):
    b = Browser()
    status, headers, body = b.call("POST", served.url + "/write", {"cart": ["tea"]})
    assert status == 200 and body == {"cart": ["tea"]}
    [set_cookie] = headers.get_all("Set-Cookie")
    m = COOKIE.match(set_cookie)
    assert m, set_cookie
    assert headers["Cache-Control"] == "no-store"
    token = m.group(1)
    assert b.cookie(NAME) == token
    assert client.whoami(token).session.attributes == {"cart": ["tea"]}

    # Read back: the jar sends the cookie; nothing is set again.
    status, headers, body = b.call("GET", served.url + "/read")
    assert body["attributes"] == {"cart": ["tea"]} and headers.get_all("Set-Cookie") is None

    # Login rotates: the jar holds the new token, the old one is dead at the service.
    who = unique("alice")
    status, headers, body = b.call("POST", served.url + f"/login/{who}")
    assert body == {"principal": who, "attributes": {"cart": ["tea"]}}
    new = b.cookie(NAME)
    assert new and new != token
    with pytest.raises(Unauthenticated):
        client.whoami(token)
    assert b.call("GET", served.url + "/read")[2]["principal"] == who

    # Logout clears the cookie in the jar and ends the session at the service.
    status, headers, body = b.call("POST", served.url + "/logout")
    assert headers["Set-Cookie"].startswith(f"{NAME}=; Max-Age=0; ")
    assert b.cookie(NAME) is None
    with pytest.raises(Unauthenticated):
        client.whoami(new)
    assert b.call("GET", served.url + "/read")[2]["principal"] is None


def test_two_flask_apps_share_the_session(served, service_url):
    # A second app object with its own client, on another port of the same host: the
    # browser's cookie goes to both (cookies do not depend on the port).
    other = Served(plain_app(service_url, name="other"))
    try:
        b = Browser()
        who = unique("bob")
        b.call("POST", served.url + "/write", {"from": "first"})
        b.call("POST", served.url + f"/login/{who}")
        body = b.call("GET", other.url + "/read")[2]
        assert body["principal"] == who and body["attributes"] == {"from": "first"}
        b.call("POST", other.url + "/write", {"from": "second"})
        assert b.call("GET", served.url + "/read")[2]["attributes"] == {"from": "second"}
        b.call("POST", other.url + "/logout")
        assert b.call("GET", served.url + "/read")[2]["principal"] is None
    finally:
        other.stop()


def test_parallel_requests_of_one_session_count_exactly(served, client):
    b = Browser()
    b.call("POST", served.url + "/write", {"counter": 0})
    results, errors = [], []

    def hit():
        try:
            status, _, body = b.call("POST", served.url + "/increment")
            results.append((status, body))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=hit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert all(status == 200 for status, _ in results) and len(results) == 10
    assert sorted(body["counter"] for _, body in results) == list(range(1, 11))
    assert client.whoami(b.cookie(NAME)).session.attributes["counter"] == 10


def test_503_when_the_service_is_down():
    rproc, rport = start_redis()
    sproc, url = start_service(rport)
    served = Served(plain_app(url))
    try:
        b = Browser()
        assert b.call("POST", served.url + "/write", {"a": 1})[0] == 200
        assert b.cookie(NAME)
        # The store goes away: the service answers 503, and so does the app.
        rproc.stop()
        status, headers, _ = b.call("GET", served.url + "/read")
        assert status == 503 and headers["Retry-After"] == "1"
        # The service goes away too: still 503, for reads and for writes.
        sproc.stop()
        status, headers, _ = b.call("GET", served.url + "/read")
        assert status == 503 and headers["Retry-After"] == "1"
        status, headers, body = Browser().call("POST", served.url + "/write", {"b": 2})
        assert status == 503 and headers["Retry-After"] == "1"
        assert headers.get_all("Set-Cookie") is None
        # Views that do not use the session are not affected.
        assert b.call("GET", served.url + "/nothing")[0] == 200
    finally:
        served.stop()
        sproc.stop()
        rproc.stop()
