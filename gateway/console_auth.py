"""Console login: the password hash (`hash_password`, `verify_password`, `parse_password_hash`)
and the login policy (`Authenticator`: backoff after a wrong password, lockout after too many,
on trio's clock).

The hash is scrypt (hashlib) in one self-describing string, so the cost can be raised later
without breaking old hashes: `scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`. It lives in
`console.password_hash` of tipring.toml, written by `tipring passwd` or the console's `passwd`.
The password itself is never stored, logged or shown. `gateway.console` owns one
`Authenticator` per port; the app keeps it across console restarts so that unplugging the
cable does not reset a lockout. Pure apart from `Authenticator.check` (trio: a worker thread
for scrypt, the clock for backoff and lockout).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import trio

from gateway.errors import ConfigError

log = logging.getLogger(__name__)

# scrypt's "interactive login" cost (Percival 2009): 16 MiB and ~60 ms on one x86 core here,
# a few hundred ms on a Pi Zero 2 W. More memory would crowd the 512 MB Zero while calls run.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_SCRYPT_MEMORY = 64 * 2**20  # a hash asking for more (a hand-edited config) is refused
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 200  # below the line editor's MAX_LINE_CHARS, so a paste cannot be cut
HASH_KEY = "console.password_hash"


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed `scrypt$n$r$p$salt$key` string."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __repr__(self) -> str:
        return f"PasswordHash(n={self.n}, r={self.r}, p={self.p}, salt=<...>, key=<...>)"


def _scrypt(password: str, n: int, r: int, p: int, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=MAX_SCRYPT_MEMORY + 2**20, dklen=KEY_BYTES)  # fmt: skip


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
                  salt: bytes | None = None) -> str:  # fmt: skip
    """The `scrypt$...` string for `password` with a fresh random salt (or `salt`)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    _check_cost(n, r, p)
    key = _scrypt(password, n, r, p, salt)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def parse_password_hash(text: str) -> PasswordHash:
    """The parts of a `scrypt$...` string; `ConfigError` naming `console.password_hash` (never
    echoing the value) if it is not one we can check."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError(f"{HASH_KEY} is not 'scrypt$n$r$p$salt$key': set it with tipring passwd")
    if not all(part.isdigit() for part in parts[1:4]):
        raise ConfigError(f"{HASH_KEY}: n, r and p must be whole numbers")
    n, r, p = (int(part) for part in parts[1:4])
    _check_cost(n, r, p)
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{HASH_KEY}: salt or key is not base64") from None
    if not salt or len(key) != KEY_BYTES:
        raise ConfigError(f"{HASH_KEY}: wants a salt and a {KEY_BYTES}-byte key")
    return PasswordHash(n, r, p, salt, key)


def _check_cost(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ConfigError(f"{HASH_KEY}: n must be a power of 2, r 1..32, p 1..16")
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise ConfigError(f"{HASH_KEY}: n*r asks for over {MAX_SCRYPT_MEMORY >> 20} MiB")


def verify_password(password: str, stored: PasswordHash) -> bool:
    """Whether `password` matches (a constant-time comparison of the derived keys)."""
    key = _scrypt(password, stored.n, stored.r, stored.p, stored.salt)
    return hmac.compare_digest(key, stored.key)


def new_password_problem(password: str) -> str | None:
    """Why `password` cannot be the new console password, or None if it can."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"too short: at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"too long: at most {MAX_PASSWORD_CHARS} characters"
    if not password.isprintable():
        return "control characters are not allowed"
    try:
        password.encode()
    except UnicodeEncodeError:  # a non-UTF-8 terminal's bytes, as getpass decodes them
        return "is not valid UTF-8 text"
    return None


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """How failed logins are slowed down: the k-th wrong password in a row costs
    `backoff_base_s * 2**(k-1)` (at most `backoff_max_s`); the `max_failures`-th locks the
    console for `lockout_s`."""

    max_failures: int = 5
    lockout_s: float = 900.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0


class Outcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # wait `wait_s` before the next try
    LOCKED = "locked"  # locked for `wait_s` more
    NO_PASSWORD = "no_password"  # none is set: nobody can log in


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: Outcome
    wait_s: float = 0.0


# How scrypt is run: in a worker thread (the default), or inline in tests on trio's MockClock,
# whose autojump would otherwise move time on while the thread works.
RunSync = Callable[..., Awaitable[Any]]


class Authenticator:
    """Checks console passwords under a `LoginPolicy`. `password_hash` "" means none is set
    (every login is refused). `ConfigError` if the hash cannot be parsed. `run_sync` runs
    scrypt (see `RunSync`)."""

    def __init__(self, password_hash: str, policy: LoginPolicy | None = None,
                 run_sync: RunSync = trio.to_thread.run_sync) -> None:  # fmt: skip
        self.policy = policy or LoginPolicy()
        self._run_sync = run_sync
        self._stored = parse_password_hash(password_hash) if password_hash else None
        self._failures = 0
        self._locked_until = -float("inf")

    @property
    def failures(self) -> int:
        """Wrong passwords in a row since the last login or lockout."""
        return self._failures

    def locked_for_s(self) -> float:
        """How much longer logins are refused (0: not locked)."""
        return max(self._locked_until - trio.current_time(), 0.0)

    def replace(self, password_hash: str) -> None:
        """Use a new hash (after `passwd`); `ConfigError` if it is malformed."""
        self._stored = parse_password_hash(password_hash)

    async def hash(self, password: str) -> str:
        """A new `scrypt$...` hash of `password` at today's cost (as `run_sync` runs it)."""
        return str(await self._run_sync(hash_password, password))

    async def check(self, password: str) -> LoginResult:
        """Check `password` (scrypt in a worker thread: the event loop carries audio). While
        locked nothing is checked, so a locked console answers nothing about the password."""
        locked_s = self.locked_for_s()
        if locked_s > 0:
            return LoginResult(Outcome.LOCKED, locked_s)
        if self._stored is None:
            return LoginResult(Outcome.NO_PASSWORD)
        ok = await self._run_sync(verify_password, password, self._stored)
        if ok is True:
            self._failures = 0
            return LoginResult(Outcome.OK)
        return self._failed()

    def _failed(self) -> LoginResult:
        policy = self.policy
        self._failures += 1
        if self._failures >= policy.max_failures:
            self._failures = 0
            self._locked_until = trio.current_time() + policy.lockout_s
            log.warning("console: %d wrong passwords in a row: locked for %.0f s",
                        policy.max_failures, policy.lockout_s)  # fmt: skip
            return LoginResult(Outcome.LOCKED, policy.lockout_s)
        wait_s = policy.backoff_base_s * 2 ** (self._failures - 1)
        return LoginResult(Outcome.WRONG, min(wait_s, policy.backoff_max_s))
