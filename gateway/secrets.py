"""Secrets: the credentials tipring sends (the realtime API key, HTTP tools' auth tokens), read
from a file only its owner can read or from an environment variable, and held in a `Secret`.

A `Secret` shows its value to no one: `repr` and `str` name its source (`file /etc/...`,
`environment variable OPENAI_API_KEY`), it refuses to be pickled, and the only way to the value
is `reveal()`, called where the header is built. Errors name the file or the variable, never
the content. Nothing here logs. `gateway.realtime.secrets.ApiKey` is the same type with the
realtime client's error class; `gateway.tools_http` uses `Secret` itself.

A secret is one token: printable ASCII without spaces (what an HTTP header carries; a space or
line break inside means the wrong file, or a header smuggled in), at most `MAX_SECRET_BYTES`.
"""

from __future__ import annotations

import os
import stat
from typing import ClassVar, NoReturn, TypeVar

from gateway.errors import ConfigError

MAX_SECRET_BYTES = 4096  # keys and tokens are ~50-2000 characters; a bigger file is the wrong one
S = TypeVar("S", bound="Secret")


def is_token(text: str) -> bool:
    """Whether `text` is one token of printable ASCII (no space, no control character)."""
    return bool(text) and all(0x21 <= ord(c) <= 0x7E for c in text)


class Secret:
    """A credential and where it came from. Never printed, logged, pickled or compared by value.
    Subclasses set `error` to raise their package's `ConfigError`."""

    __slots__ = ("_value", "source")
    error: ClassVar[type[ConfigError]] = ConfigError

    def __init__(self, value: str, source: str) -> None:
        if not is_token(value):
            # No echo of the value: it may be a real key with a stray newline in the middle.
            raise self.error(f"secret from {source} is empty or holds spaces or control "
                             "characters (or is not ASCII)")  # fmt: skip
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The value itself, for the header that sends it and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r}, value=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled")  # nor reach a file or queue


def secret_from_file(path: str | os.PathLike[str], where: str, kind: type[S]) -> S:
    """The stripped content of secret file `path` as a `kind` (`Secret` or a subclass);
    `kind.error` (naming `where` and the path, never the content) if it cannot be read, is not
    a regular file, group or others may read or write it (mode 0600 or stricter), is over
    `MAX_SECRET_BYTES`, or is not one token of printable ASCII."""
    name = os.fspath(path)
    fail = kind.error
    if "\0" in name:  # os.open raises ValueError for it, not OSError
        raise fail(f"{where} {name!r} is not a file path: it holds a NUL character")
    try:
        # O_NONBLOCK: a FIFO put where the file should be must not hang start-up.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            data = _read_private(fd, where, name, fail)
        finally:
            os.close(fd)
    except OSError as exc:
        raise fail(f"{where} '{name}' cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise fail(f"{where} '{name}' is not ASCII text") from None
    if not text:
        raise fail(f"{where} '{name}' is empty")
    if not is_token(text):
        # A line break would split the header (or smuggle another); a space, a second token.
        raise fail(f"{where} '{name}' holds spaces or control characters: one token only")
    return kind(text, f"file {name}")


def _read_private(fd: int, where: str, name: str, fail: type[ConfigError]) -> bytes:
    """The content of open file `fd` if it is a regular file only its owner may read or
    write (fstat: of the file we read, not of whatever the path names a moment later)."""
    what = f"{where} '{name}'"
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise fail(f"{what} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        can = "read" if mode & 0o044 else "write"
        raise fail(f"{what} has mode {mode:04o}: others can {can} it; run chmod 600 {name}")
    data = b""
    while len(data) <= MAX_SECRET_BYTES:
        chunk = os.read(fd, MAX_SECRET_BYTES + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    raise fail(f"{what} is over {MAX_SECRET_BYTES} bytes: not a secret")


def secret_from_env(name: str, where: str, kind: type[S]) -> S:
    """The stripped value of environment variable `name` as a `kind`; `kind.error` naming
    `where` and the variable if it is unset, empty or not one token of printable ASCII."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise kind.error(f"{where} {name} is not set or empty")
    if not is_token(value):
        raise kind.error(f"{where} {name} holds spaces or control characters: one token only")
    return kind(value, f"environment variable {name}")
