"""A client for the sesame session service (``sesame serve``), on the standard library only.

Every method maps to one endpoint of the service's ``/v1`` API. A session token is sent as
``Authorization: Bearer <token>``, the service credential as ``X-Sesame-Service-Key``. Replies
come back as dataclasses; errors as :class:`SesameError` subclasses that carry the HTTP status
and the service's message, never a token.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

__all__ = [
    "SesameClient",
    "SessionView",
    "TokenChange",
    "SessionReply",
    "CompareAndSetResult",
    "SessionInfo",
    "UserSessions",
    "SesameError",
    "BadRequest",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "TooManyRequests",
    "ServerError",
    "Unavailable",
    "ServiceUnreachable",
    "UnexpectedReply",
]

_VERSION = "0.1.0"
DEFAULT_USER_AGENT = f"sesame-session-python/{_VERSION}"

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class SesameError(Exception):
    """An error answer of the service, or a failure to get one.

    ``status`` is the HTTP status (``None`` when no answer came), ``message`` the service's
    ``error`` text. Neither ever holds a session token.
    """

    default_status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        self.message = message
        self.status = status if status is not None else self.default_status
        super().__init__(message)

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.status}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r})"


class BadRequest(SesameError):
    """400: the request's input was refused (bad JSON, a bad attribute name, ...)."""

    default_status = 400


class Unauthenticated(SesameError):
    """401: no valid session (missing, malformed, unknown, expired or ended token), or no
    service credential where one is needed."""

    default_status = 401


class Forbidden(SesameError):
    """403: a wrong service credential, or a service that has none configured."""

    default_status = 403


class NotFound(SesameError):
    """404: an unknown path."""

    default_status = 404


class MethodNotAllowed(SesameError):
    """405: a method the path does not take."""

    default_status = 405


class PayloadTooLarge(SesameError):
    """413: a limit was exceeded (a body, a value, a session's size)."""

    default_status = 413


class TooManyRequests(SesameError):
    """429: the creation of a session was refused."""

    default_status = 429


class ServerError(SesameError):
    """A 5xx answer other than 503."""

    default_status = 500


class Unavailable(SesameError):
    """503: the store is unavailable; try again later.

    ``outcome_unknown`` is true when a write may have been applied all the same (the service
    said ``"outcome": "unknown"``, or the connection failed after the request was sent).
    ``retry_after`` is the service's ``Retry-After`` in seconds, when it sent one.
    """

    default_status = 503

    def __init__(
        self,
        message: str,
        status: Optional[int] = None,
        *,
        outcome_unknown: bool = False,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(message, status)
        self.outcome_unknown = outcome_unknown
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, "
            f"outcome_unknown={self.outcome_unknown!r})"
        )


class ServiceUnreachable(Unavailable):
    """No answer from the service: it could not be reached, the connection broke, or the
    timeout ran out. ``status`` is ``None``."""

    default_status = None


class UnexpectedReply(SesameError):
    """The service answered something that is not the JSON the API describes."""


_BY_STATUS: Dict[int, Type[SesameError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    429: TooManyRequests,
    503: Unavailable,
}

# --------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenChange:
    """What the caller must do with its token: ``keep`` it, ``set`` the new ``value`` (valid
    until ``expires_at_ms``), or ``clear`` it. The token is left out of the repr."""

    action: str
    value: Optional[str] = field(default=None, repr=False)
    expires_at_ms: Optional[int] = None

    @property
    def is_keep(self) -> bool:
        return self.action == "keep"

    @property
    def is_set(self) -> bool:
        return self.action == "set"

    @property
    def is_clear(self) -> bool:
        return self.action == "clear"

    @classmethod
    def from_json(cls, d: Any) -> "TokenChange":
        if not isinstance(d, dict) or d.get("action") not in ("keep", "set", "clear"):
            raise UnexpectedReply("the reply's token action is missing or unknown")
        value = d.get("value")
        if d["action"] == "set" and not isinstance(value, str):
            raise UnexpectedReply("a token action 'set' without a token")
        return cls(action=d["action"], value=value, expires_at_ms=d.get("expires_at_ms"))


@dataclass(frozen=True)
class SessionView:
    """A session as the service shows it. ``id`` is the public id (safe to log), not a
    token; ``principal`` and ``authenticated_at_ms`` are ``None`` for an anonymous session."""

    id: str
    principal: Optional[str]
    attributes: Dict[str, Any]
    created_at_ms: int
    expires_at_ms: int
    authenticated_at_ms: Optional[int] = None
    created_at: Optional[str] = None
    expires_at: Optional[str] = None

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    @classmethod
    def from_json(cls, d: Any) -> "SessionView":
        if not isinstance(d, dict):
            raise UnexpectedReply("the reply has no session object")
        try:
            attributes = d.get("attributes") or {}
            if not isinstance(attributes, dict):
                raise UnexpectedReply("the session's attributes are not an object")
            return cls(
                id=d["id"],
                principal=d.get("principal"),
                attributes=attributes,
                created_at_ms=d["created_at_ms"],
                expires_at_ms=d["expires_at_ms"],
                authenticated_at_ms=d.get("authenticated_at_ms"),
                created_at=d.get("created_at"),
                expires_at=d.get("expires_at"),
            )
        except KeyError as e:
            raise UnexpectedReply(f"the session object lacks {e.args[0]!r}") from None


@dataclass(frozen=True)
class SessionReply:
    """A session and what to do with the token (create, whoami, patch, login)."""

    session: SessionView
    token: TokenChange

    @classmethod
    def from_json(cls, d: Any) -> "SessionReply":
        if not isinstance(d, dict):
            raise UnexpectedReply("the reply is not a JSON object")
        return cls(SessionView.from_json(d.get("session")), TokenChange.from_json(d.get("token")))


@dataclass(frozen=True)
class CompareAndSetResult:
    """The outcome of a compare-and-set: whether it wrote, and the attribute's value after the
    call (``None``: absent)."""

    swapped: bool
    current: Any
    session: SessionView
    token: TokenChange

    @classmethod
    def from_json(cls, d: Any) -> "CompareAndSetResult":
        r = SessionReply.from_json(d)
        if not isinstance(d.get("swapped"), bool):
            raise UnexpectedReply("the compare-and-set reply lacks 'swapped'")
        return cls(d["swapped"], d.get("current"), r.session, r.token)


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions, as listed: public id, times, and the address and browser
    that created it."""

    id: str
    created_at_ms: int
    expires_at_ms: int
    authenticated_at_ms: Optional[int] = None
    ip: Optional[str] = None
    user_agent: Optional[str] = None

    @classmethod
    def from_json(cls, d: Any) -> "SessionInfo":
        if not isinstance(d, dict):
            raise UnexpectedReply("a listed session is not an object")
        try:
            return cls(
                id=d["id"],
                created_at_ms=d["created_at_ms"],
                expires_at_ms=d["expires_at_ms"],
                authenticated_at_ms=d.get("authenticated_at_ms"),
                ip=d.get("ip"),
                user_agent=d.get("user_agent"),
            )
        except KeyError as e:
            raise UnexpectedReply(f"a listed session lacks {e.args[0]!r}") from None


@dataclass(frozen=True)
class UserSessions:
    """A user's live sessions, most recently active first. ``current`` is the id of the
    session that asked (only for :meth:`SesameClient.user_sessions`)."""

    principal: str
    sessions: List[SessionInfo]
    current: Optional[str] = None

    @classmethod
    def from_json(cls, d: Any) -> "UserSessions":
        if not isinstance(d, dict) or not isinstance(d.get("sessions"), list):
            raise UnexpectedReply("the reply lacks the list of sessions")
        return cls(
            principal=d.get("principal"),
            sessions=[SessionInfo.from_json(s) for s in d["sessions"]],
            current=d.get("current"),
        )


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

_READS = frozenset({"GET", "HEAD"})
# A kept-alive connection unused for longer than this is closed rather than reused, so that a
# request rarely meets a connection the service has just closed.
_MAX_IDLE_S = 4.0


class _Pool:
    """Kept-alive connections to one origin, shared by threads (one request per connection at
    a time)."""

    def __init__(self, factory, size: int) -> None:
        self._factory = factory
        self._size = size
        self._idle: List[Tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def take(self) -> Tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since <= _MAX_IDLE_S:
                    return conn, True
                conn.close()
        return self._factory(), False

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def _redact(text: str, *secrets: Optional[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
    return text


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a path segment must be a non-empty string")
    return urllib.parse.quote(value, safe="")


class SesameClient:
    """A client of one ``sesame serve`` service.

    ``base_url`` is the service's address (``http://127.0.0.1:7700``; ``https://`` works
    too, with ``ssl_context``). ``service_key`` is the credential of the privileged endpoints
    (login, the ``/v1/users/...`` ones); without it they answer 401. ``timeout`` bounds the
    connection and each read, in seconds.

    The client is thread-safe and keeps a few connections alive for reuse; :meth:`close` (or
    a ``with`` block) closes them.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:7700",
        *,
        service_key: Optional[str] = None,
        timeout: float = 5.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        user_agent: str = DEFAULT_USER_AGENT,
        max_idle_connections: int = 8,
    ) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        if u.query or u.fragment or u.username or u.password:
            raise ValueError("base_url takes no query, fragment or credentials")
        if service_key is not None and not isinstance(service_key, str):
            raise TypeError("service_key must be a string")
        self._host = u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._prefix = u.path.rstrip("/")
        self._timeout = timeout
        self._service_key = service_key
        self._user_agent = user_agent
        self._origin = f"{u.scheme}://{u.netloc}"
        if u.scheme == "https":
            context = ssl_context or ssl.create_default_context()

            def factory() -> http.client.HTTPConnection:
                return http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=context
                )

        else:

            def factory() -> http.client.HTTPConnection:
                return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

        self._pool = _Pool(factory, max_idle_connections)

    def __repr__(self) -> str:
        key = "set" if self._service_key else "none"
        return f"SesameClient({self._origin + self._prefix!r}, service_key={key})"

    def close(self) -> None:
        """Closes the kept-alive connections (the client stays usable)."""
        self._pool.close()

    def __enter__(self) -> "SesameClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def has_service_key(self) -> bool:
        return bool(self._service_key)

    # --- transport -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        token: Optional[str] = None,
        body: Any = None,
        key: bool = False,
        client_ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> Tuple[int, Any]:
        headers = {"Accept": "application/json", "User-Agent": user_agent or self._user_agent}
        if token is not None:
            if not isinstance(token, str) or not token:
                raise ValueError("a token must be a non-empty string")
            headers["Authorization"] = f"Bearer {token}"
        if key and self._service_key:
            headers["X-Sesame-Service-Key"] = self._service_key
        if client_ip:
            headers["X-Forwarded-For"] = client_ip
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        url = self._prefix + path
        secrets = (token, self._service_key)

        attempt = 0
        while True:
            attempt += 1
            conn, reused = self._pool.take()
            sent = False
            try:
                conn.request(method, url, body=data, headers=headers)
                sent = True
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                # A kept-alive connection the service closed meanwhile: the request never got
                # there when sending failed; a read is repeated also when the service closed
                # without answering (an idle close). A write whose answer was lost is not.
                if reused and attempt == 1 and (not sent or method in _READS):
                    continue
                raise ServiceUnreachable(
                    _redact(f"the connection to the session service broke: {e}", *secrets),
                    outcome_unknown=sent and method not in _READS,
                ) from None
            except (socket.timeout, TimeoutError) as e:
                conn.close()
                raise ServiceUnreachable(
                    f"the session service did not answer within {self._timeout} s",
                    outcome_unknown=sent and method not in _READS,
                ) from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise ServiceUnreachable(
                    _redact(
                        f"cannot reach the session service at {self._origin}: {e}", *secrets
                    ),
                    outcome_unknown=sent and method not in _READS,
                ) from None
            if resp.will_close:
                conn.close()
            else:
                self._pool.give_back(conn)
            break

        try:
            payload = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            payload = None
            if 200 <= resp.status < 300:
                raise UnexpectedReply(
                    f"the service answered {resp.status} with a body that is not JSON",
                    resp.status,
                ) from None
        if 200 <= resp.status < 300:
            return resp.status, payload
        raise self._error(resp, payload, secrets)

    @staticmethod
    def _error(resp: http.client.HTTPResponse, payload: Any, secrets) -> SesameError:
        status = resp.status
        message = None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            message = payload["error"]
        if message is None:
            message = resp.reason or f"HTTP {status}"
        message = _redact(message, *secrets)
        if status == 503:
            retry_after = None
            ra = resp.getheader("Retry-After")
            if ra and ra.strip().isdigit():
                retry_after = int(ra.strip())
            unknown = isinstance(payload, dict) and payload.get("outcome") == "unknown"
            return Unavailable(message, status, outcome_unknown=unknown, retry_after=retry_after)
        cls = _BY_STATUS.get(status)
        if cls is None:
            cls = ServerError if status >= 500 else SesameError
        return cls(message, status)

    # --- the session presented ----------------------------------------------------------

    def create(
        self,
        attributes: Optional[Dict[str, Any]] = None,
        principal: Optional[str] = None,
        *,
        client_ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> SessionReply:
        """``POST /v1/sessions``: a new session, anonymous or (with ``principal``, which needs
        the service key) logged in. ``client_ip`` and ``user_agent`` are the browser's: the
        service records them with the session (forwarded as ``X-Forwarded-For`` and
        ``User-Agent``)."""
        body: Dict[str, Any] = {}
        if attributes:
            body["attributes"] = dict(attributes)
        if principal is not None:
            body["principal"] = principal
        _, d = self._request(
            "POST",
            "/v1/sessions",
            body=body,
            key=principal is not None,
            client_ip=client_ip,
            user_agent=user_agent,
        )
        return SessionReply.from_json(d)

    def whoami(self, token: str) -> SessionReply:
        """``GET /v1/session``: the session ``token`` names. Raises :class:`Unauthenticated`
        when it names none (missing, malformed, unknown, expired or ended)."""
        _, d = self._request("GET", "/v1/session", token=token)
        return SessionReply.from_json(d)

    def patch(
        self,
        token: str,
        set: Optional[Dict[str, Any]] = None,
        remove: Optional[List[str]] = None,
    ) -> SessionReply:
        """``PATCH /v1/session``: sets then removes attributes."""
        body: Dict[str, Any] = {}
        if set:
            body["set"] = dict(set)
        if remove:
            body["remove"] = list(remove)
        _, d = self._request("PATCH", "/v1/session", token=token, body=body)
        return SessionReply.from_json(d)

    def compare_and_set(
        self, token: str, name: str, expected: Any, value: Any
    ) -> CompareAndSetResult:
        """``POST /v1/session/compare-and-set``: writes ``value`` (``None`` removes) only if
        the attribute equals ``expected`` (``None``: absent), atomically against every other
        writer."""
        body = {"name": name, "expected": expected, "value": value}
        _, d = self._request("POST", "/v1/session/compare-and-set", token=token, body=body)
        return CompareAndSetResult.from_json(d)

    def login(
        self,
        token: Optional[str],
        principal: str,
        *,
        client_ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> SessionReply:
        """``POST /v1/session/login`` (needs the service key): binds ``principal`` to the
        session ``token`` names, with a new token (the old one is dead at once). Without a
        valid token, a new session is created."""
        _, d = self._request(
            "POST",
            "/v1/session/login",
            token=token,
            body={"principal": principal},
            key=True,
            client_ip=client_ip,
            user_agent=user_agent,
        )
        return SessionReply.from_json(d)

    def logout(self, token: Optional[str]) -> TokenChange:
        """``POST /v1/session/logout``: ends the session's whole lineage; answers ``clear``
        also without a valid token."""
        _, d = self._request("POST", "/v1/session/logout", token=token or None)
        return TokenChange.from_json((d or {}).get("token"))

    def user_sessions(self, token: str) -> UserSessions:
        """``GET /v1/session/user-sessions``: the logged-in user's live sessions."""
        _, d = self._request("GET", "/v1/session/user-sessions", token=token)
        return UserSessions.from_json(d)

    def revoke_user_session(self, token: str, session_id: str) -> bool:
        """``DELETE /v1/session/user-sessions/{id}``: ends another session of the same user."""
        _, d = self._request(
            "DELETE", f"/v1/session/user-sessions/{_segment(session_id)}", token=token
        )
        return _field(d, "revoked", bool)

    def revoke_others(self, token: str) -> int:
        """``POST /v1/session/revoke-others``: ends every other session of the user; the
        number ended."""
        _, d = self._request("POST", "/v1/session/revoke-others", token=token)
        return _field(d, "revoked", int)

    # --- by principal (service key) -----------------------------------------------------

    def admin_list(self, principal: str) -> UserSessions:
        """``GET /v1/users/{principal}/sessions``."""
        _, d = self._request("GET", f"/v1/users/{_segment(principal)}/sessions", key=True)
        return UserSessions.from_json(d)

    def admin_revoke(self, principal: str, session_id: str) -> bool:
        """``DELETE /v1/users/{principal}/sessions/{id}``."""
        _, d = self._request(
            "DELETE",
            f"/v1/users/{_segment(principal)}/sessions/{_segment(session_id)}",
            key=True,
        )
        return _field(d, "revoked", bool)

    def admin_revoke_all(self, principal: str, except_id: Optional[str] = None) -> int:
        """``POST /v1/users/{principal}/revoke``: ends every session of the user but
        ``except_id``; the number ended."""
        body = {"except": except_id} if except_id is not None else {}
        _, d = self._request(
            "POST", f"/v1/users/{_segment(principal)}/revoke", body=body, key=True
        )
        return _field(d, "revoked", int)

    # --- the process ----------------------------------------------------------------------

    def health(self) -> bool:
        """``GET /v1/health``: whether the process answers (the store is not asked)."""
        _, d = self._request("GET", "/v1/health")
        return isinstance(d, dict) and d.get("status") == "ok"


def _field(d: Any, name: str, kind: type) -> Any:
    if not isinstance(d, dict) or name not in d:
        raise UnexpectedReply(f"the reply lacks {name!r}")
    v = d[name]
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise UnexpectedReply(f"{name!r} is not a number")
    if kind is bool and not isinstance(v, bool):
        raise UnexpectedReply(f"{name!r} is not a boolean")
    return v
