"""Console login: scrypt hashes (round trip, known answer, malformed ones), the backoff and
lockout policy on trio's clock, and the `[console]` settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
import trio

from gateway.console_auth import (
    Authenticator,
    LoginPolicy,
    LoginResult,
    Outcome,
    hash_password,
    new_password_problem,
    parse_password_hash,
    verify_password,
)
from gateway.console_config import ConsoleConfig
from gateway.errors import ConfigError
from tests.gateway.console_rig import PASSWORD, TEST_HASH, inline

CHEAP = {"n": 16, "r": 1, "p": 1}


def test_hash_round_trip_and_fresh_salt() -> None:
    first, second = hash_password(PASSWORD, **CHEAP), hash_password(PASSWORD, **CHEAP)
    assert first != second  # a new salt each time
    for text in (first, second):
        stored = parse_password_hash(text)
        assert verify_password(PASSWORD, stored)
        assert not verify_password(PASSWORD + " ", stored)
        assert not verify_password("", stored)


def test_default_cost_and_format_known_answer() -> None:
    salt = bytes(range(16))
    text = hash_password("pässword", salt=salt)
    key = hashlib.scrypt("pässword".encode(), salt=salt, n=2**14, r=8, p=1,
                         maxmem=2**26, dklen=32)  # fmt: skip
    b64 = base64.b64encode
    assert text == f"scrypt$16384$8$1${b64(salt).decode()}${b64(key).decode()}"
    assert verify_password("pässword", parse_password_hash(text))


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("gateway.console_auth.hmac.compare_digest", spy)
    assert verify_password(PASSWORD, parse_password_hash(TEST_HASH))
    assert len(compared) == 1
    assert len(compared[0][0]) == 32


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hunter2", "is not 'scrypt$n$r$p$salt$key'"),
        ("bcrypt$16$8$1$AAAA$BBBB", "is not 'scrypt$n$r$p$salt$key'"),
        ("scrypt$x$8$1$AAAA$BBBB", "n, r and p must be whole numbers"),
        ("scrypt$1000$8$1$AAAA$BBBB", "n must be a power of 2"),
        ("scrypt$1048576$8$1$AAAA$BBBB", "asks for over 64 MiB"),
        ("scrypt$16$1$1$!!!!$BBBB", "salt or key is not base64"),
        ("scrypt$16$1$1$AAAA$BBBB", "wants a salt and a 32-byte key"),
    ],
)
def test_malformed_hashes_are_config_errors_naming_the_key(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"console\.password_hash") as caught:
        parse_password_hash(text)
    assert why in str(caught.value)
    assert "AAAA" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_new_password_rules() -> None:
    assert new_password_problem("seven77") == "too short: at least 8 characters"
    assert new_password_problem("x" * 201) == "too long: at most 200 characters"
    assert new_password_problem("eight888\x1b") == "control characters are not allowed"
    assert new_password_problem("correct horse 42") is None


def authenticator(**policy: Any) -> Authenticator:
    return Authenticator(TEST_HASH, LoginPolicy(**policy), run_sync=inline)


async def test_backoff_doubles_up_to_its_cap_then_locks(autojump_clock: trio.abc.Clock) -> None:
    auth = authenticator(max_failures=6, lockout_s=300, backoff_base_s=2, backoff_max_s=10)
    results = [await auth.check("wrong") for _ in range(6)]
    assert results == [LoginResult(Outcome.WRONG, w) for w in (2, 4, 8, 10, 10)] + [
        LoginResult(Outcome.LOCKED, 300)]  # fmt: skip
    assert auth.failures == 0
    assert auth.locked_for_s() == 300


async def test_lockout_refuses_the_right_password_until_it_expires(
    autojump_clock: trio.abc.Clock,
) -> None:
    auth = authenticator(max_failures=2, lockout_s=60)
    await auth.check("wrong")
    await auth.check("wrong")
    await trio.sleep(59)
    assert await auth.check(PASSWORD) == LoginResult(Outcome.LOCKED, pytest.approx(1.0))
    await trio.sleep(1)
    assert auth.locked_for_s() == 0
    assert await auth.check(PASSWORD) == LoginResult(Outcome.OK)


async def test_a_good_login_resets_the_failures(autojump_clock: trio.abc.Clock) -> None:
    auth = authenticator(max_failures=3)
    await auth.check("wrong")
    await auth.check("wrong")
    assert (await auth.check(PASSWORD)).outcome is Outcome.OK
    assert (await auth.check("wrong")) == LoginResult(Outcome.WRONG, 1.0)  # counting from 1


async def test_no_password_and_replace() -> None:
    auth = Authenticator("")
    assert await auth.check("anything") == LoginResult(Outcome.NO_PASSWORD)
    auth.replace(hash_password("brand new pw", **CHEAP))
    assert (await auth.check("brand new pw")).outcome is Outcome.OK  # in a worker thread
    with pytest.raises(ConfigError):
        auth.replace("nonsense")
    new = await auth.hash("another one")
    assert new.startswith("scrypt$16384$8$1$")
    assert verify_password("another one", parse_password_hash(new))


def test_console_config_reads_the_table_and_names_bad_keys() -> None:
    config = ConsoleConfig.from_table({"device": "/dev/ttyAMA0", "baudrate": 921600,
                                       "password_hash": TEST_HASH, "lockout_s": 60,
                                       "color": True})  # fmt: skip
    assert (config.device, config.baudrate, config.lockout_s, config.color) == (
        "/dev/ttyAMA0", 921600, 60.0, True)  # fmt: skip
    assert config.policy == LoginPolicy(5, 60.0, 1.0, 30.0)
    assert TEST_HASH not in repr(config)
    assert "password_hash=<set>" in repr(config)
    bad = {
        "colour": "console.colour is not a console setting",
        "max_failures": "console.max_failures must be 1..100, got 0",
        "baudrate": "console.baudrate 12345 is not one of",
        "color": "console.color must be true or false, got 'yes'",
        "password_hash": "console.password_hash is not 'scrypt$n$r$p$salt$key'",
        "idle_logout_s": "console.idle_logout_s must be a number, got '10m'",
    }
    values = {"colour": 1, "max_failures": 0, "baudrate": 12345, "color": "yes",
              "password_hash": "plain", "idle_logout_s": "10m"}  # fmt: skip
    for key, message in bad.items():
        with pytest.raises(ConfigError) as caught:
            ConsoleConfig.from_table({key: values[key]})
        assert message in str(caught.value)
