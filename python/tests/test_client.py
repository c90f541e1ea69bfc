"""The client against a real ``sesame serve`` on a real Redis: every endpoint."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import SERVICE_KEY, start_redis, start_service, unique
from sesame_session import (
    BadRequest,
    Forbidden,
    NotFound,
    SesameClient,
    ServiceUnreachable,
    SessionView,
    Unauthenticated,
    Unavailable,
)


def test_health(client):
    assert client.health() is True


def test_create_anonymous_and_whoami(client):
    r = client.create({"theme": "dark", "cart": ["apple"]})
    assert r.token.is_set and len(r.token.value) == 68
    assert r.token.expires_at_ms == r.session.expires_at_ms
    assert r.session.principal is None and r.session.authenticated_at_ms is None
    assert r.session.attributes == {"theme": "dark", "cart": ["apple"]}
    assert r.session.created_at_ms <= r.session.expires_at_ms
    assert r.session.created_at.endswith("Z")

    w = client.whoami(r.token.value)
    assert w.token.is_keep
    assert w.session.id == r.session.id
    assert w.session.attributes == {"theme": "dark", "cart": ["apple"]}


def test_whoami_without_a_valid_token_is_401(client):
    with pytest.raises(Unauthenticated) as e:
        client._request("GET", "/v1/session")
    assert e.value.status == 401 and e.value.message
    for bad in ["x" * 68, "not a token", "A" * 68]:
        with pytest.raises(Unauthenticated):
            client.whoami(bad)


def test_tokens_never_appear_in_errors_or_reprs(client):
    r = client.create({"a": 1})
    token = r.token.value
    assert token not in repr(r) and token not in str(r)
    client.logout(token)
    with pytest.raises(Unauthenticated) as e:
        client.whoami(token)
    assert token not in str(e.value) and token not in repr(e.value)
    assert SERVICE_KEY not in repr(client)


def test_create_logged_in_needs_the_key(client, anon_client):
    who = unique("carol")
    r = client.create({"x": 1}, principal=who, client_ip="203.0.113.7", user_agent="Browser/1.0")
    assert r.session.principal == who and r.session.authenticated_at_ms is not None
    listed = client.admin_list(who)
    assert [s.id for s in listed.sessions] == [r.session.id]
    assert listed.sessions[0].ip == "203.0.113.7"
    assert listed.sessions[0].user_agent == "Browser/1.0"
    with pytest.raises(Unauthenticated):
        anon_client.create({"x": 1}, principal=who)
    wrong = SesameClient(client._origin, service_key="a-wrong-key-0123456789")
    with pytest.raises(Forbidden) as e:
        wrong.create({"x": 1}, principal=who)
    assert e.value.status == 403


def test_patch_sets_then_removes(client):
    token = client.create({"a": 1, "b": 2}).token.value
    r = client.patch(token, set={"c": {"deep": [1, 2]}, "a": 10}, remove=["b"])
    assert r.token.is_keep
    assert r.session.attributes == {"a": 10, "c": {"deep": [1, 2]}}
    assert client.whoami(token).session.attributes == {"a": 10, "c": {"deep": [1, 2]}}


def test_bad_input_is_400(client):
    token = client.create({"keep": True}).token.value
    # A name both set and removed ends up removed (set, then remove).
    assert "a" not in client.patch(token, set={"a": 1}, remove=["a"]).session.attributes
    with pytest.raises(BadRequest) as e:
        client.patch(token, set={"sesame.internal": 1})
    assert e.value.status == 400 and e.value.message
    with pytest.raises(BadRequest):
        client.patch(token, set={"x" * 257: 1})
    with pytest.raises(BadRequest):
        client.create({"": 1})
    # A session with nothing in it is not made.
    with pytest.raises(BadRequest):
        client.create()
    # A body that is not the JSON asked for.
    with pytest.raises(BadRequest):
        client._request("PATCH", "/v1/session", token=token, body=["not", "an", "object"])
    assert client.whoami(token).session.attributes == {"keep": True}


def test_unknown_path_is_404(client):
    with pytest.raises(NotFound):
        client._request("GET", "/v1/nothing-here")


def test_compare_and_set(client):
    token = client.create({"n": 1}).token.value
    r = client.compare_and_set(token, "n", 1, 2)
    assert r.swapped is True and r.current == 2 and r.session.attributes["n"] == 2
    r = client.compare_and_set(token, "n", 1, 3)
    assert r.swapped is False and r.current == 2
    # Absent: expected None.
    r = client.compare_and_set(token, "fresh", None, {"v": 1})
    assert r.swapped and r.current == {"v": 1}
    r = client.compare_and_set(token, "fresh", None, {"v": 2})
    assert not r.swapped and r.current == {"v": 1}
    # value None removes.
    r = client.compare_and_set(token, "n", 2, None)
    assert r.swapped and r.current is None and "n" not in r.session.attributes
    with pytest.raises(Unauthenticated):
        client.compare_and_set("B" * 68, "n", None, 1)


def test_twenty_threads_compare_and_set_exactly_twenty(client):
    token = client.create({"counter": 0}).token.value
    errors = []
    tries = []
    start = threading.Barrier(20)

    def worker():
        try:
            start.wait(timeout=10)
            n = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n += 1
                cur = client.whoami(token).session.attributes["counter"]
                if client.compare_and_set(token, "counter", cur, cur + 1).swapped:
                    tries.append(n)
                    return
            errors.append("no swap within 30 s")
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(tries) == 20
    assert client.whoami(token).session.attributes["counter"] == 20


def test_login_rotates_and_keeps_anonymous_attributes(client, anon_client):
    who = unique("alice")
    old = client.create({"cart": ["tea"]}).token.value
    r = client.login(old, who, client_ip="198.51.100.4", user_agent="UA/2")
    assert r.token.is_set and r.token.value != old
    assert r.session.principal == who and r.session.attributes == {"cart": ["tea"]}
    with pytest.raises(Unauthenticated):
        client.whoami(old)
    assert client.whoami(r.token.value).session.principal == who
    # The key is needed.
    with pytest.raises(Unauthenticated):
        anon_client.login(r.token.value, who)
    wrong = SesameClient(client._origin, service_key="a-wrong-key-0123456789")
    with pytest.raises(Forbidden):
        wrong.login(r.token.value, who)


def test_login_as_another_user_starts_clean(client):
    a, b = unique("ann"), unique("bob")
    t = client.login(None, a).token.value
    client.patch(t, set={"secret": "of ann"})
    r = client.login(t, b)
    assert r.session.principal == b and r.session.attributes == {}
    with pytest.raises(Unauthenticated):
        client.whoami(t)


def test_login_without_token_creates(client):
    who = unique("dave")
    r = client.login(None, who)
    assert r.token.is_set and r.session.principal == who


def test_logout(client):
    t = client.create({"a": 1}).token.value
    change = client.logout(t)
    assert change.is_clear and change.value is None
    with pytest.raises(Unauthenticated):
        client.whoami(t)
    # Also without a (valid) token.
    assert client.logout(None).is_clear
    assert client.logout(t).is_clear


def test_user_sessions_revoke_one_and_others(client):
    who = unique("erin")
    tokens = [client.login(None, who, user_agent=f"UA/{i}").token.value for i in range(3)]
    mine = client.whoami(tokens[0]).session.id
    listed = client.user_sessions(tokens[0])
    assert listed.principal == who and listed.current == mine
    assert len(listed.sessions) == 3 and mine in [s.id for s in listed.sessions]
    other = client.whoami(tokens[1]).session.id
    assert client.revoke_user_session(tokens[0], other) is True
    assert client.revoke_user_session(tokens[0], other) is False
    with pytest.raises(Unauthenticated):
        client.whoami(tokens[1])
    assert client.revoke_others(tokens[0]) == 1
    with pytest.raises(Unauthenticated):
        client.whoami(tokens[2])
    assert [s.id for s in client.user_sessions(tokens[0]).sessions] == [mine]
    # Anonymous sessions have no user's sessions.
    anon = client.create({"a": 1}).token.value
    with pytest.raises(Unauthenticated):
        client.user_sessions(anon)
    with pytest.raises(Unauthenticated):
        client.revoke_others(anon)


def test_admin_endpoints(client, anon_client):
    who = unique("frank")
    t1 = client.login(None, who).token.value
    t2 = client.login(None, who).token.value
    t3 = client.login(None, who).token.value
    ids = [client.whoami(t).session.id for t in (t1, t2, t3)]
    listed = client.admin_list(who)
    assert listed.principal == who and sorted(s.id for s in listed.sessions) == sorted(ids)
    assert client.admin_revoke(who, ids[0]) is True
    assert client.admin_revoke(who, ids[0]) is False
    with pytest.raises(Unauthenticated):
        client.whoami(t1)
    assert client.admin_revoke_all(who, except_id=ids[2]) == 1
    with pytest.raises(Unauthenticated):
        client.whoami(t2)
    assert client.whoami(t3).session.principal == who
    assert client.admin_revoke_all(who) == 1
    assert client.admin_list(who).sessions == []
    # The key is needed: 401 without, 403 wrong.
    with pytest.raises(Unauthenticated):
        anon_client.admin_list(who)
    wrong = SesameClient(client._origin, service_key="a-wrong-key-0123456789")
    for call in (
        lambda: wrong.admin_list(who),
        lambda: wrong.admin_revoke(who, ids[2]),
        lambda: wrong.admin_revoke_all(who),
    ):
        with pytest.raises(Forbidden) as e:
            call()
        assert e.value.status == 403


def test_principals_with_reserved_characters_in_paths(client):
    who = unique("o'neil/ü ?#")
    client.login(None, who)
    assert len(client.admin_list(who).sessions) == 1
    assert client.admin_revoke_all(who) == 1


def test_service_without_key_answers_403(redis_port):
    proc, url = start_service(redis_port, key=None)
    try:
        c = SesameClient(url, service_key=SERVICE_KEY)
        with pytest.raises(Forbidden):
            c.login(None, "someone")
        with pytest.raises(Forbidden):
            c.admin_list("someone")
        assert c.create({"a": 1}).session.principal is None
    finally:
        proc.stop()


def test_store_down_is_503_and_service_down_is_unreachable():
    rproc, rport = start_redis()
    sproc, url = start_service(rport)
    try:
        c = SesameClient(url, service_key=SERVICE_KEY, timeout=10)
        token = c.create({"a": 1}).token.value
        rproc.stop()
        with pytest.raises(Unavailable) as e:
            c.whoami(token)
        assert e.value.status == 503 and e.value.retry_after == 1
        assert not isinstance(e.value, ServiceUnreachable)
        with pytest.raises(Unavailable) as e:
            c.patch(token, set={"a": 2})
        assert e.value.status == 503
        assert c.health() is True  # the process answers; the store is not asked
        sproc.stop()
        with pytest.raises(ServiceUnreachable) as e:
            c.health()
        assert e.value.status is None and not e.value.outcome_unknown
        with pytest.raises(Unavailable):
            c.create({"a": 1})
    finally:
        sproc.stop()
        rproc.stop()


def test_a_silent_service_times_out():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        c = SesameClient(f"http://127.0.0.1:{port}", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ServiceUnreachable) as e:
            c.patch("A" * 68, set={"a": 1})
        assert time.monotonic() - started < 5
        assert e.value.outcome_unknown is True
        assert "A" * 68 not in str(e.value)


def test_session_view_parses_the_documented_shape():
    v = SessionView.from_json(
        {
            "id": "q1VbVQ3p6vM0JdKxvQm0Ag",
            "principal": "alice",
            "attributes": {"cart": ["apple"]},
            "created_at": "2026-11-30T13:00:00.000Z",
            "created_at_ms": 1764507600000,
            "expires_at": "2026-11-30T13:30:00.000Z",
            "expires_at_ms": 1764509400000,
            "authenticated_at_ms": 1764507600000,
        }
    )
    assert v.authenticated and v.attributes == {"cart": ["apple"]}
