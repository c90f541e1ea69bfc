"""sesame-session: the Python side of sesame's shared sessions.

:class:`SesameClient` talks to the ``sesame serve`` HTTP session service with the standard
library only; ``sesame_session.flask`` (needs Flask) makes ``flask.session`` a session kept by
that service, shared with Rust apps under the same cookie and token.
"""

from . import client as _client
from .client import *  # noqa: F401,F403  (the names client.__all__ lists)

__version__ = _client._VERSION
__all__ = list(_client.__all__)
