"""The realtime API key: a `gateway.secrets.Secret` read from a file only its owner can read, or
from an environment variable (`profiles.load_api_key` picks which).

`ApiKey` is `Secret` with `RealtimeConfigError` as its error: the reading, the checks and the
hiding (`repr`/`str` name the source, no pickling, `reveal()` once per connection to build the
auth header) are `gateway.secrets`', shared with the HTTP tools. Nothing here logs.
"""

from __future__ import annotations

import os
from typing import ClassVar

from gateway.errors import ConfigError
from gateway.realtime.errors import RealtimeConfigError
from gateway.secrets import MAX_SECRET_BYTES, Secret, secret_from_env, secret_from_file

__all__ = ["MAX_SECRET_BYTES", "ApiKey", "key_from_env", "key_from_file"]


class ApiKey(Secret):
    """A realtime API key and where it came from. Never printed, logged, pickled or compared
    by value."""

    __slots__ = ()
    error: ClassVar[type[ConfigError]] = RealtimeConfigError


def key_from_file(path: str | os.PathLike[str]) -> ApiKey:
    """The key in `path` (surrounding whitespace stripped). The file must be a regular file that
    neither group nor others can read or write (mode 0600 or stricter)."""
    return secret_from_file(path, "API key file", ApiKey)


def key_from_env(name: str) -> ApiKey:
    """The key in the environment variable `name`."""
    return secret_from_env(name, "API key variable", ApiKey)
