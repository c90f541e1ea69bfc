"""Flask sessions kept by the sesame session service.

``app.session_interface = SesameSessionInterface(client)`` makes ``flask.session`` a
:class:`SesameSession`: a dict of JSON values that lives in the service, under the same cookie
and token as the Rust layers (``sesame-axum``, ``sesame-actix``), so that a Flask app and Rust
services behind one load balancer share one login.

- The session is loaded from the service the first time a request touches it, and saved after
  the view only when something changed: a request that changes nothing makes no write, and a
  request that never touches the session makes no service call at all.
- A save sends only the attributes that changed (``PATCH /v1/session``), so concurrent
  requests that change different attributes do not overwrite each other;
  :meth:`SesameSession.compare_and_set` is the atomic read-modify-write for one attribute.
- :func:`login` and :func:`logout` work on the current request's session, as the Rust layers'
  ``Session::login`` and ``Session::logout`` do: login rotates the token (the old one is dead),
  logout ends the session everywhere and clears the cookie.

Values must be JSON-serializable (``dict``, ``list``, ``str``, numbers, ``bool``, ``None``);
setting anything else raises :class:`TypeError` at once. Tuples come back as lists.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from flask import Flask, Request, Response, has_request_context, request
from flask import session as _flask_session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import (
    HTTPException,
    RequestEntityTooLarge,
    ServiceUnavailable,
    TooManyRequests as _TooManyRequests,
    Unauthorized,
)

from .client import (
    CompareAndSetResult,
    PayloadTooLarge,
    SesameClient,
    SessionReply,
    SessionView,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "SesameSessionInterface",
    "SesameSession",
    "login",
    "logout",
    "compare_and_set",
]

# A token as the Rust layers make them is 68 base64url characters; anything that cannot be one
# is ignored without asking the service (loosely, so that a longer format still passes).
_TOKEN_FORM = re.compile(r"[A-Za-z0-9_-]{16,1024}")
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_ATTR_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]+")  # visible ASCII but ';'
_RESERVED_PREFIX = "sesame."


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError("session attribute names are strings")
    n = len(name.encode("utf-8"))
    if not 1 <= n <= 256:
        raise KeyError(f"a session attribute name is 1 to 256 bytes, not {n}")
    if name.startswith(_RESERVED_PREFIX):
        raise KeyError("session attribute names starting with 'sesame.' are reserved")


def _check_value(name: str, value: Any) -> None:
    try:
        _canonical(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"session attribute {name!r}: the value must be JSON-serializable "
            f"(dict, list, str, int, float, bool or None), not {type(value).__name__}"
        ) from None


def _unavailable(e: Unavailable) -> ServiceUnavailable:
    exc = ServiceUnavailable("The session service is unavailable; try again.", retry_after=1)
    exc.__cause__ = e
    return exc


class SesameSession(dict, SessionMixin):
    """The session of one request: a dict of JSON values, loaded from the service when first
    touched.

    ``id`` is the session's public id (safe to log; ``None`` until it exists), ``principal``
    the logged-in user (``None`` when anonymous). The token itself is kept private and never
    shown in a repr.

    Changes are found by comparing the values with those loaded, so changing a nested value in
    place (``session["cart"].append(x)``) is saved too.
    """

    def __init__(self, interface: "SesameSessionInterface", token: Optional[str]) -> None:
        super().__init__()
        self._interface = interface
        self._token = token
        self._loaded = token is None
        self._snapshot: Dict[str, str] = {}
        self._cookie: Optional[Tuple[str, Optional[str], Optional[int]]] = None
        self._touched = False
        self.accessed = False
        self._view: Optional[SessionView] = None

    # --- what the service says of the session (loads it when needed) ------------------------

    @property
    def id(self) -> Optional[str]:
        """The public id (safe to log), ``None`` while the session does not exist."""
        self._ensure()
        return self._view.id if self._view else None

    @property
    def principal(self) -> Optional[str]:
        """The logged-in user, ``None`` when anonymous."""
        self._ensure()
        return self._view.principal if self._view else None

    @property
    def authenticated_at_ms(self) -> Optional[int]:
        """When the user logged in (milliseconds since the epoch)."""
        self._ensure()
        return self._view.authenticated_at_ms if self._view else None

    @property
    def expires_at_ms(self) -> Optional[int]:
        """When the session expires unless used again (milliseconds since the epoch)."""
        self._ensure()
        return self._view.expires_at_ms if self._view else None

    # --- loading -----------------------------------------------------------------------

    def _ensure(self) -> None:
        self.accessed = True
        if self._loaded:
            return
        client = self._interface.client
        try:
            reply = client.whoami(self._token)
        except Unauthenticated:
            # Missing, expired, ended: an empty new session (created at the first write).
            self._token = None
            self._loaded = True
            return
        except Unavailable as e:
            raise _unavailable(e) from None
        self._loaded = True
        self._apply(reply)

    def _apply(self, reply: SessionReply) -> None:
        """Takes the service's view of the session as the loaded state."""
        view = reply.session
        dict.clear(self)
        dict.update(self, view.attributes)
        self._snapshot = {k: _canonical(v) for k, v in view.attributes.items()}
        self._view = view
        self._touched = True
        if reply.token.is_set:
            self._token = reply.token.value
            self._cookie = ("set", reply.token.value, reply.token.expires_at_ms)
        elif reply.token.is_clear:
            self._forget()

    def _forget(self) -> None:
        dict.clear(self)
        self._snapshot = {}
        self._token = None
        self._loaded = True
        self._view = None
        self._cookie = ("clear", None, None)

    # --- what changed ---------------------------------------------------------------------

    def changes(self) -> Tuple[Dict[str, Any], List[str]]:
        """The attributes to write and the names to remove, compared with what was loaded."""
        if not self._loaded:
            return {}, []
        to_set = {}
        for k, v in dict.items(self):
            try:
                c = _canonical(v)
            except (TypeError, ValueError):
                _check_value(k, v)
                raise
            if self._snapshot.get(k) != c:
                to_set[k] = v
        removed = [k for k in self._snapshot if not dict.__contains__(self, k)]
        return to_set, removed

    @property
    def modified(self) -> bool:  # type: ignore[override]
        """Whether the save after the view will write or send a cookie."""
        to_set, removed = self.changes()
        return bool(to_set or removed or self._cookie)

    @modified.setter
    def modified(self, value: bool) -> None:
        # Changes are found by comparing with the loaded values, in-place changes of nested
        # values included, so the usual `session.modified = True` has nothing left to do.
        pass

    @property
    def new(self) -> bool:  # type: ignore[override]
        """Whether the request has no session in the service yet."""
        self._ensure()
        return self._token is None

    @property
    def permanent(self) -> bool:  # type: ignore[override]
        return self._interface.persistent

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if bool(value) != self._interface.persistent:
            raise TypeError(
                "SesameSession.permanent follows the interface: construct "
                "SesameSessionInterface(..., persistent=True) for cookies that outlive the "
                "browser"
            )

    def _flush(self) -> None:
        """Writes the changes now: creates the session when it has no token and something is
        to be written, or patches it."""
        self._ensure()
        to_set, removed = self.changes()
        client = self._interface.client
        if self._token is None and to_set:
            ip, ua = self._interface._client_facts()
            reply = client.create(to_set, client_ip=ip, user_agent=ua)
        elif to_set or removed:
            reply = client.patch(self._token, set=to_set, remove=removed)
        else:
            return
        self._apply(reply)

    # --- login, logout, compare-and-set --------------------------------------------------

    def login(self, principal: str) -> None:
        """Logs the session in as ``principal`` with a new token (the old one stops working
        at once). An anonymous session keeps its attributes; a session of another user is
        ended and a clean one starts. Changes made earlier in this request are kept and saved
        after the view. Needs the client's service key."""
        if not isinstance(principal, str) or not principal:
            raise ValueError("the principal must be a non-empty string")
        to_set, removed = self.changes()
        ip, ua = self._interface._client_facts()
        try:
            reply = self._interface.client.login(
                self._token, principal, client_ip=ip, user_agent=ua
            )
        except Unavailable as e:
            raise _unavailable(e) from None
        self._loaded = True
        self.accessed = True
        self._apply(reply)
        for k, v in to_set.items():
            dict.__setitem__(self, k, v)
        for k in removed:
            dict.pop(self, k, None)

    def logout(self) -> None:
        """Ends the session everywhere (every instance, every app sharing the service) and
        clears the cookie. Writes made after it start a new anonymous session."""
        self.accessed = True
        if self._token is not None:
            try:
                self._interface.client.logout(self._token)
            except Unavailable as e:
                raise _unavailable(e) from None
        self._forget()

    def compare_and_set(self, name: str, expected: Any, value: Any) -> Tuple[bool, Any]:
        """Writes ``value`` only if the attribute currently equals ``expected`` (``None``:
        absent), atomically against every other writer in any app; ``value`` ``None`` removes
        it. Other changes of this request are saved first (a session without a token is
        created). Returns ``(swapped, current)``, ``current`` being the value after the call;
        the session's contents are refreshed from the service."""
        _check_name(name)
        _check_value(name, expected)
        _check_value(name, value)
        try:
            self._flush()
            if self._token is None:
                # No session yet, so nothing else can write to it: the attribute is absent.
                if expected is not None:
                    return False, None
                if value is not None:
                    self[name] = value
                    self._flush()
                return True, value
            result: CompareAndSetResult = self._interface.client.compare_and_set(
                self._token, name, expected, value
            )
        except Unavailable as e:
            raise _unavailable(e) from None
        except Unauthenticated:
            raise Unauthorized("The session has ended.") from None
        self._apply(SessionReply(result.session, result.token))
        return result.swapped, result.current

    # --- the dict ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._ensure()
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        _check_name(key)
        _check_value(key, value)
        self._ensure()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._ensure()
        dict.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self._ensure()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._ensure()
        return dict.__reversed__(self)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        self._ensure()
        return dict.__len__(self)

    def __eq__(self, other: object) -> bool:
        self._ensure()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._ensure()
        return dict.__ne__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self._loaded:
            return "<SesameSession (not loaded)>"
        v = self._view
        return (
            f"<SesameSession id={v.id if v else None!r} principal={v.principal if v else None!r} "
            f"{dict.__repr__(self)}>"
        )

    def __or__(self, other: Any) -> Dict[str, Any]:
        self._ensure()
        return dict(dict.items(self)) | dict(other)

    def __ior__(self, other: Any) -> "SesameSession":
        self.update(other)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        self._ensure()
        return dict.get(self, key, default)

    def keys(self):  # type: ignore[override]
        self._ensure()
        return dict.keys(self)

    def values(self):  # type: ignore[override]
        self._ensure()
        return dict.values(self)

    def items(self):  # type: ignore[override]
        self._ensure()
        return dict.items(self)

    def copy(self) -> Dict[str, Any]:  # type: ignore[override]
        """A plain dict with the session's attributes."""
        self._ensure()
        return dict(dict.items(self))

    _MISSING = object()

    def pop(self, key: str, default: Any = _MISSING) -> Any:  # type: ignore[override]
        self._ensure()
        if default is SesameSession._MISSING:
            return dict.pop(self, key)
        return dict.pop(self, key, default)

    def popitem(self) -> Tuple[str, Any]:
        self._ensure()
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ensure()
        if not dict.__contains__(self, key):
            self[key] = default
        return dict.__getitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def clear(self) -> None:
        self._ensure()
        dict.clear(self)

    @classmethod
    def fromkeys(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise TypeError("a SesameSession is made by its session interface")


class SesameSessionInterface(SessionInterface):
    """A Flask session interface that keeps sessions in the sesame session service.

    ``client`` is a :class:`~sesame_session.client.SesameClient` (give it the service key for
    :func:`login`). The cookie defaults are the Rust layers': name ``__Host-sesame``,
    ``Secure``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, no ``Domain``, no ``Max-Age``
    unless ``persistent`` (then ``Max-Age`` is the session's remaining life). The settings are
    checked here: a ``__Host-`` name needs ``secure=True``, ``path="/"`` and no domain; a
    ``__Secure-`` name and ``samesite="None"`` need ``secure=True``.

    ``forward_client``: send the browser's address (``request.remote_addr``; put werkzeug's
    ``ProxyFix`` in front when behind a proxy) and ``User-Agent`` to the service when a session
    is created or logged in, so that a user's list of sessions shows them.
    """

    def __init__(
        self,
        client: SesameClient,
        cookie_name: str = "__Host-sesame",
        secure: bool = True,
        samesite: str = "Lax",
        path: str = "/",
        persistent: bool = False,
        *,
        http_only: bool = True,
        domain: Optional[str] = None,
        forward_client: bool = True,
    ) -> None:
        if not isinstance(client, SesameClient):
            raise TypeError("client must be a SesameClient")
        if not isinstance(cookie_name, str) or not _COOKIE_NAME.fullmatch(cookie_name):
            raise ValueError(
                "cookie_name must be 1 to 128 token characters (no spaces, ';', '=' ...)"
            )
        if samesite not in ("Lax", "Strict", "None"):
            raise ValueError("samesite must be 'Lax', 'Strict' or 'None'")
        if not path.startswith("/") or not _ATTR_VALUE.fullmatch(path):
            raise ValueError("path must start with '/' and hold no ';', spaces or controls")
        if domain is not None and not _ATTR_VALUE.fullmatch(domain):
            raise ValueError("domain must hold no ';', spaces or control characters")
        lower = cookie_name.lower()
        if lower.startswith("__host-") and (not secure or path != "/" or domain is not None):
            raise ValueError("a __Host- cookie needs secure=True, path='/' and no domain")
        if lower.startswith("__secure-") and not secure:
            raise ValueError("a __Secure- cookie needs secure=True")
        if samesite == "None" and not secure:
            raise ValueError("samesite='None' needs secure=True")
        self.client = client
        self.cookie_name = cookie_name
        self.secure = bool(secure)
        self.http_only = bool(http_only)
        self.samesite = samesite
        self.path = path
        self.domain = domain
        self.persistent = bool(persistent)
        self.forward_client = forward_client

    # --- cookies -------------------------------------------------------------------------

    def _attributes(self) -> str:
        out = f"; Path={self.path}"
        if self.domain is not None:
            out += f"; Domain={self.domain}"
        if self.secure:
            out += "; Secure"
        if self.http_only:
            out += "; HttpOnly"
        return out + f"; SameSite={self.samesite}"

    def set_cookie_value(self, token: str, expires_at_ms: Optional[int]) -> str:
        """The ``Set-Cookie`` value handing out ``token``, as the Rust layers write it."""
        out = f"{self.cookie_name}={token}"
        if self.persistent and expires_at_ms is not None:
            max_age = max(0, (int(expires_at_ms) - int(time.time() * 1000)) // 1000)
            out += f"; Max-Age={max_age}"
        return out + self._attributes()

    def clear_cookie_value(self) -> str:
        """The ``Set-Cookie`` value that makes the browser forget the cookie."""
        return (
            f"{self.cookie_name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
            + self._attributes()
        )

    def presented_token(self, req: Request) -> Optional[str]:
        """The token the request's cookie carries: ``None`` when there is none, when no value
        can be a token, or when different tokens are presented (none wins, as in the Rust
        layers)."""
        values = {v for v in req.cookies.getlist(self.cookie_name) if _TOKEN_FORM.fullmatch(v)}
        return values.pop() if len(values) == 1 else None

    def _client_facts(self) -> Tuple[Optional[str], Optional[str]]:
        if not self.forward_client or not has_request_context():
            return None, None
        return request.remote_addr, request.headers.get("User-Agent")

    # --- the SessionInterface ----------------------------------------------------------

    def open_session(self, app: Flask, req: Request) -> SesameSession:
        return SesameSession(self, self.presented_token(req))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, SesameSession):
            return
        try:
            if session._loaded:
                session._flush()
        except Unavailable as e:
            self._replace(app, response, _unavailable(e))
            return
        except Unauthenticated:
            # The session ended meanwhile (logged out or revoked elsewhere): the changes are
            # not saved, and the response must not say they were.
            self._replace(app, response, Unauthorized("The session has ended."))
            session._forget()
        except PayloadTooLarge:
            self._replace(app, response, RequestEntityTooLarge("The session is too large."))
            return
        except TooManyRequests:
            self._replace(app, response, _TooManyRequests("No new session can be made now."))
            return
        except HTTPException as e:
            self._replace(app, response, e)
            return
        cookie = session._cookie
        value = None
        if cookie is not None and cookie[0] == "set":
            value = self.set_cookie_value(cookie[1], cookie[2])  # type: ignore[arg-type]
        elif cookie is not None and cookie[0] == "clear":
            value = self.clear_cookie_value()
        elif self.persistent and session._touched and session._token is not None:
            # A persistent cookie follows the session's life: sent again with a fresh Max-Age
            # whenever this request loaded or saved the session.
            view = session._view
            value = self.set_cookie_value(session._token, view.expires_at_ms if view else None)
        if value is not None:
            response.headers.add("Set-Cookie", value)
            response.headers["Cache-Control"] = "no-store"
            response.vary.add("Cookie")
        elif session.accessed:
            response.vary.add("Cookie")

    @staticmethod
    def _replace(app: Flask, response: Response, exc: HTTPException) -> None:
        """Turns the view's response into the error's (through the app's error handlers): a
        failed save must not leave a response that says it worked."""
        try:
            err = app.make_response(app.handle_http_exception(exc))
        except Exception:  # a failing error handler: the plain error
            err = exc.get_response()
        response.status = err.status
        response.headers.clear()
        for k, v in err.headers.items():
            response.headers.add(k, v)
        response.set_data(err.get_data())
        response.headers["Cache-Control"] = "no-store"


def _current() -> SesameSession:
    s = _flask_session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(s, SesameSession):
        raise RuntimeError(
            "the current session is not a SesameSession: set "
            "app.session_interface = SesameSessionInterface(client)"
        )
    return s


def login(principal: str) -> None:
    """Logs the current request's session in as ``principal``; see
    :meth:`SesameSession.login`."""
    _current().login(principal)


def logout() -> None:
    """Logs the current request's session out everywhere and clears the cookie."""
    _current().logout()


def compare_and_set(name: str, expected: Any, value: Any) -> Tuple[bool, Any]:
    """Compare-and-set on the current request's session; see
    :meth:`SesameSession.compare_and_set`."""
    return _current().compare_and_set(name, expected, value)
