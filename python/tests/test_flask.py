"""SesameSessionInterface through Flask's test client, against a real service and Redis."""

from __future__ import annotations

import re

import pytest
from flask import request, session

from conftest import SERVICE_KEY, free_port, unique
from flask_apps import CountingClient, make_app
from sesame_session import SesameClient, Unauthenticated
from sesame_session.flask import SesameSessionInterface

COOKIE = re.compile(
    r"^__Host-sesame=([A-Za-z0-9_-]{68}); Path=/; Secure; HttpOnly; SameSite=Lax$"
)
CLEAR = (
    "__Host-sesame=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; "
    "HttpOnly; SameSite=Lax"
)


@pytest.fixture()
def counting(service_url):
    c = CountingClient(service_url, service_key=SERVICE_KEY)
    yield c
    c.close()


@pytest.fixture()
def app(counting):
    return make_app(counting)


def set_cookies(resp):
    return resp.headers.getlist("Set-Cookie")


def token_of(resp) -> str:
    [value] = set_cookies(resp)
    m = COOKIE.match(value)
    assert m, value
    return m.group(1)


def test_anonymous_write_creates_a_session_and_sets_the_cookie(app, counting, client):
    web = app.test_client()
    r = web.post("/write", json={"theme": "dark", "cart": ["apple"]})
    assert r.status_code == 200
    token = token_of(r)
    assert r.headers["Cache-Control"] == "no-store"
    assert "Cookie" in r.headers["Vary"]
    assert counting.take_calls() == [("POST", "/v1/sessions")]
    # The service knows it.
    view = client.whoami(token).session
    assert view.attributes == {"theme": "dark", "cart": ["apple"]} and view.principal is None


def test_read_back_and_no_call_when_nothing_changed(app, counting):
    web = app.test_client()
    web.post("/write", json={"n": 1})
    counting.take_calls()
    r = web.get("/read")
    assert r.json["attributes"] == {"n": 1} and r.json["principal"] is None
    assert r.json["id"] and len(r.json["id"]) < 68
    assert set_cookies(r) == []
    assert r.headers["Vary"] == "Cookie"
    # One load, no write.
    assert counting.take_calls() == [("GET", "/v1/session")]
    # Writing the values it already has writes nothing either.
    r = web.post("/write", json={"n": 1})
    assert counting.take_calls() == [("GET", "/v1/session")]
    # A view that never touches the session makes no call at all.
    r = web.get("/nothing")
    assert r.status_code == 200 and set_cookies(r) == []
    assert counting.take_calls() == []
    # Without a cookie, reading makes no call either.
    fresh = app.test_client()
    assert fresh.get("/read").json["attributes"] == {}
    assert counting.take_calls() == []


def test_changes_are_patched_by_name(app, counting, client):
    web = app.test_client()
    token = token_of(web.post("/write", json={"a": 1, "b": 2}))
    counting.take_calls()
    r = web.post("/remove/a")
    assert r.json == {"b": 2} and set_cookies(r) == []
    assert counting.take_calls() == [("GET", "/v1/session"), ("PATCH", "/v1/session")]
    # In-place changes of nested values are found too.
    web.post("/cart/tea")
    assert web.post("/cart/coffee").json == {"cart": ["tea", "coffee"]}
    assert client.whoami(token).session.attributes == {"b": 2, "cart": ["tea", "coffee"]}
    # Another writer's change of another attribute is not overwritten by a save.
    client.patch(token, set={"other": "kept"})
    web.post("/write", json={"b": 3})
    assert client.whoami(token).session.attributes == {
        "b": 3,
        "cart": ["tea", "coffee"],
        "other": "kept",
    }


def test_login_rotates_the_token(app, client):
    web = app.test_client()
    old = token_of(web.post("/write", json={"cart": ["tea"]}))
    who = unique("alice")
    r = web.post(f"/login/{who}")
    assert r.json == {"principal": who, "attributes": {"cart": ["tea"]}}
    new = token_of(r)
    assert new != old
    with pytest.raises(Unauthenticated):
        client.whoami(old)
    assert client.whoami(new).session.principal == who
    assert web.get("/read").json["principal"] == who


def test_login_without_a_session_and_writes_before_it(app, client):
    web = app.test_client()
    who = unique("bea")

    @app.post("/write-then-login")
    def write_then_login():
        from sesame_session.flask import login

        session["next"] = "/home"
        login(who)
        session["after"] = 1
        return "ok"

    token = token_of(web.post("/write-then-login"))
    view = client.whoami(token).session
    assert view.principal == who and view.attributes == {"next": "/home", "after": 1}


def test_logout_clears_the_cookie(app, client):
    web = app.test_client()
    web.post("/write", json={"a": 1})
    token = token_of(web.post(f"/login/{unique('carl')}"))
    r = web.post("/logout")
    assert set_cookies(r) == [CLEAR]
    assert r.headers["Cache-Control"] == "no-store"
    with pytest.raises(Unauthenticated):
        client.whoami(token)
    assert web.get("/read").json == {"attributes": {}, "id": None, "principal": None}
    # Logging out without a session still clears the cookie.
    assert set_cookies(app.test_client().post("/logout")) == [CLEAR]


def test_a_second_app_sees_the_same_session(app, service_url, client):
    other_client = SesameClient(service_url, service_key=SERVICE_KEY)
    other = make_app(other_client, name="other")
    web1, web2 = app.test_client(), other.test_client()
    who = unique("dora")
    web1.post("/write", json={"from": "app one"})
    token = token_of(web1.post(f"/login/{who}"))
    web2.set_cookie("__Host-sesame", token)
    r = web2.get("/read")
    assert r.json["principal"] == who and r.json["attributes"] == {"from": "app one"}
    web2.post("/write", json={"from": "app two"})
    assert web1.get("/read").json["attributes"] == {"from": "app two"}
    web2.post("/logout")
    assert web1.get("/read").json["principal"] is None
    other_client.close()


def test_a_dead_cookie_is_a_new_empty_session(app, counting, client):
    web = app.test_client()
    token = token_of(web.post("/write", json={"a": 1}))
    client.logout(token)
    counting.take_calls()
    r = web.get("/read")
    assert r.json["attributes"] == {} and set_cookies(r) == []
    # A write starts a new session with a new token.
    new = token_of(web.post("/write", json={"b": 2}))
    assert new != token and client.whoami(new).session.attributes == {"b": 2}


def test_two_different_tokens_count_as_none(app, counting, client):
    t1 = client.create({"who": 1}).token.value
    t2 = client.create({"who": 2}).token.value
    web = app.test_client(use_cookies=False)  # sends the Cookie header as given
    r = web.get("/read", headers={"Cookie": f"__Host-sesame={t1}; __Host-sesame={t2}"})
    assert r.json["attributes"] == {}
    assert counting.take_calls() == []
    # The same token twice is that token; a malformed value beside it is ignored.
    r = web.get("/read", headers={"Cookie": f"__Host-sesame={t1}; __Host-sesame=x; a=b"})
    assert r.json["attributes"] == {"who": 1}


def test_compare_and_set(app, client):
    web = app.test_client()
    # Without a session: an absent attribute, compared locally, then created.
    r = web.post("/cas", json={"name": "n", "expected": 5, "value": 6})
    assert r.json == {"swapped": False, "current": None} and set_cookies(r) == []
    r = web.post("/cas", json={"name": "n", "expected": None, "value": 1})
    assert r.json == {"swapped": True, "current": 1}
    token = token_of(r)
    for want in (1, 2, 3):
        assert web.post("/increment").json == {"counter": want}
    assert client.whoami(token).session.attributes == {"n": 1, "counter": 3}
    r = web.post("/cas", json={"name": "n", "expected": 7, "value": 8})
    assert r.json == {"swapped": False, "current": 1}
    # A change by another writer is seen.
    client.patch(token, set={"n": 40})
    r = web.post("/cas", json={"name": "n", "expected": 40, "value": 41})
    assert r.json == {"swapped": True, "current": 41}


def test_the_session_ended_meanwhile_is_401(app, client):
    web = app.test_client()

    @app.post("/write-after-revoke")
    def write_after_revoke():
        session["before"] = 1  # loads the session
        client.logout(app.session_interface.presented_token(request))
        session["after"] = 2
        return "saved (not true)"

    web.post("/write", json={"a": 1})
    r = web.post("/write-after-revoke")
    assert r.status_code == 401 and b"saved" not in r.data
    assert r.headers["Cache-Control"] == "no-store"
    assert set_cookies(r) == [CLEAR]


def test_service_down_is_503():
    down = CountingClient(f"http://127.0.0.1:{free_port()}", service_key=SERVICE_KEY, timeout=2)
    app = make_app(down)
    web = app.test_client()
    fake = "A" * 68
    web.set_cookie("__Host-sesame", fake)
    r = web.get("/read")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert fake.encode() not in r.data
    # A write without a cookie fails at the save: its response is replaced.
    r = app.test_client().post("/write", json={"a": 1})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert set_cookies(r) == [] and b'"a"' not in r.data
    # A view that does not use the session still works.
    assert web.get("/nothing").status_code == 200
    assert down.take_calls() == [("GET", "/v1/session"), ("POST", "/v1/sessions")]

    # The app's own 503 handler shapes the answer, in the view and at the save.
    app = make_app(down)

    @app.errorhandler(503)
    def unavailable(e):
        return {"error": "sessions are unavailable"}, 503, {"Retry-After": "1"}

    web = app.test_client()
    web.set_cookie("__Host-sesame", fake)
    assert web.get("/read").json == {"error": "sessions are unavailable"}
    r = app.test_client().post("/write", json={"a": 1})
    assert r.status_code == 503 and r.json == {"error": "sessions are unavailable"}


def test_values_must_be_json(app):
    with app.test_request_context("/"):
        with pytest.raises(TypeError, match="JSON"):
            session["x"] = object()
        with pytest.raises(TypeError, match="JSON"):
            session["x"] = float("nan")
        with pytest.raises(KeyError):
            session["sesame.x"] = 1
        with pytest.raises(KeyError):
            session[""] = 1
        with pytest.raises(TypeError):
            session.permanent = True
        session.permanent = False  # what the interface says: accepted
        session.modified = True  # the usual Flask idiom: accepted, changes are found anyway


def test_flask_flash_messages_survive_a_redirect(service_url):
    from flask import flash, get_flashed_messages

    app = make_app(SesameClient(service_url, service_key=SERVICE_KEY))

    @app.post("/flash")
    def do_flash():
        flash("saved", "info")
        return "ok"

    @app.get("/flashes")
    def flashes():
        return {"messages": [list(m) for m in get_flashed_messages(with_categories=True)]}

    web = app.test_client()
    web.post("/flash")
    assert web.get("/flashes").json == {"messages": [["info", "saved"]]}
    assert web.get("/flashes").json == {"messages": []}


def test_cookie_settings_are_checked(client):
    with pytest.raises(ValueError, match="__Host-"):
        SesameSessionInterface(client, secure=False)
    with pytest.raises(ValueError, match="__Host-"):
        SesameSessionInterface(client, path="/app")
    with pytest.raises(ValueError):
        SesameSessionInterface(client, cookie_name="bad name")
    with pytest.raises(ValueError):
        SesameSessionInterface(client, cookie_name="__Secure-x", secure=False)
    with pytest.raises(ValueError):
        SesameSessionInterface(client, cookie_name="x", secure=False, samesite="None")
    with pytest.raises(ValueError):
        SesameSessionInterface(client, cookie_name="x", samesite="lax")
    plain = SesameSessionInterface(client, cookie_name="sid", secure=False)
    assert plain.set_cookie_value("t", None) == "sid=t; Path=/; HttpOnly; SameSite=Lax"


def test_persistent_cookie_carries_the_remaining_life(service_url):
    c = SesameClient(service_url, service_key=SERVICE_KEY)
    app = make_app(c, persistent=True)
    web = app.test_client()
    r = web.post("/write", json={"a": 1})
    [value] = set_cookies(r)
    m = re.match(r"^__Host-sesame=[A-Za-z0-9_-]{68}; Max-Age=(\d+); Path=/; Secure; HttpOnly; "
                 r"SameSite=Lax$", value)
    assert m, value
    assert 1790 <= int(m.group(1)) <= 1800  # the default idle timeout, 30 minutes
    # Sent again when the session was used; not when it was not.
    assert len(set_cookies(web.get("/read"))) == 1
    assert set_cookies(web.get("/nothing")) == []


def test_no_token_in_reprs(app, client):
    web = app.test_client()
    token = token_of(web.post("/write", json={"a": 1}))
    with app.test_request_context("/", headers={"Cookie": f"__Host-sesame={token}"}):
        s = app.session_interface.open_session(app, request)
        assert repr(s) == "<SesameSession (not loaded)>"
        s["b"] = 2
        assert token not in repr(s) and "'b': 2" in repr(s)


def test_sessions_made_by_flask_are_listed_with_the_browser(app, client):
    who = unique("eve")
    web = app.test_client()
    web.post("/write", json={"a": 1}, headers={"User-Agent": "FlaskTest/1"},
             environ_base={"REMOTE_ADDR": "192.0.2.10"})
    web.post(f"/login/{who}")
    [s] = client.admin_list(who).sessions
    assert s.user_agent == "FlaskTest/1" and s.ip == "192.0.2.10"
