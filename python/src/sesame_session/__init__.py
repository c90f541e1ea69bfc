"""sesame-session: the Python side of sesame's shared sessions.

:class:`SesameClient` talks to the ``sesame serve`` HTTP session service with the standard
library only; ``sesame_session.flask`` (needs Flask) makes ``flask.session`` a session kept by
that service, shared with Rust apps under the same cookie and token.
"""

from .client import (
    BadRequest,
    CompareAndSetResult,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    SesameClient,
    SesameError,
    ServiceUnreachable,
    SessionInfo,
    SessionReply,
    SessionView,
    TokenChange,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    UnexpectedReply,
    UserSessions,
)

__version__ = "0.1.0"

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
