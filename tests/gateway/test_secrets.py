"""gateway.secrets: the one reader and holder of credentials (the realtime API key, HTTP tools'
tokens): sources, refusals that name the source and never the value, and a value that shows
nowhere but `reveal()`."""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.realtime.errors import RealtimeConfigError
from gateway.realtime.secrets import ApiKey, key_from_env, key_from_file
from gateway.secrets import MAX_SECRET_BYTES, Secret, secret_from_env, secret_from_file

VALUE = "sk-tipring-UNIT-9f8e7d6c5b4a"
log = logging.getLogger(__name__)


def secret_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_secret_shows_its_source_and_never_its_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = Secret(VALUE, "file /etc/tipring/secrets/crm")
    assert secret.reveal() == VALUE
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]),
             repr({"k": secret})]  # fmt: skip
    log.info("the secret is %s / %r", secret, secret)
    for text in [*shown, caplog.text]:
        assert VALUE not in text
        assert "file /etc/tipring/secrets/crm" in text
        assert "<redacted>" in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    assert Secret(VALUE, "a") != Secret(VALUE, "a")  # no comparison by value (timing, logs)


@pytest.mark.parametrize("value", ["", "two words", "line\nbreak", "tab\t", "nul\0", "é-key"])
def test_a_value_that_is_not_one_ascii_token_is_refused_without_echo(value: str) -> None:
    with pytest.raises(ConfigError, match="secret from test is empty or holds spaces") as caught:
        Secret(value, "test")
    assert value not in str(caught.value) or not value


def test_the_api_key_is_a_secret_whose_errors_are_realtime_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RealtimeConfigError):
        ApiKey("a b", "test")
    with pytest.raises(RealtimeConfigError, match=r"API key file '.*' has mode 0644"):
        key_from_file(secret_file(tmp_path, VALUE, 0o644))
    monkeypatch.setenv("TIPRING_UNIT_KEY", f" {VALUE} ")
    key = key_from_env("TIPRING_UNIT_KEY")
    assert isinstance(key, Secret)
    assert (key.reveal(), key.source) == (VALUE, "environment variable TIPRING_UNIT_KEY")
    assert repr(key) == "ApiKey(source='environment variable TIPRING_UNIT_KEY', value=<redacted>)"


@pytest.mark.parametrize(("text", "mode", "problem"), [
    (VALUE, 0o644, "has mode 0644: others can read it; run chmod 600 "),
    (VALUE, 0o604, "has mode 0604: others can read it; run chmod 600 "),
    (VALUE, 0o660, "has mode 0660: others can read it; run chmod 600 "),
    (VALUE, 0o602, "has mode 0602: others can write it; run chmod 600 "),
    (" \n\n", 0o600, "is empty"),
    (f"{VALUE}\nX-Evil: 1", 0o600, "holds spaces or control characters: one token only"),
    (f"Bearer {VALUE}", 0o600, "holds spaces or control characters: one token only"),
    (f"{VALUE}\u00e9", 0o600, "is not ASCII text"),
    ("x" * (MAX_SECRET_BYTES + 1), 0o600, f"is over {MAX_SECRET_BYTES} bytes: not a secret"),
])  # fmt: skip
def test_bad_secret_files_are_refused_naming_the_file_never_the_content(
    tmp_path: Path, text: str, mode: int, problem: str
) -> None:
    path = secret_file(tmp_path, text, mode)
    with pytest.raises(ConfigError) as caught:
        secret_from_file(path, "where", Secret)
    assert str(caught.value).startswith(f"where '{path}' {problem}")
    assert VALUE not in str(caught.value)
    assert "xxxx" not in str(caught.value)


def test_a_private_file_and_a_symlink_to_it_give_the_stripped_token(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"\n  {VALUE}  \n", 0o400)
    link = tmp_path / "link"
    link.symlink_to(path)  # how container secrets are mounted
    for where in (path, link):
        secret = secret_from_file(where, "where", Secret)
        assert (secret.reveal(), secret.source) == (VALUE, f"file {where}")


def test_what_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # opening it for reading would wait for a writer forever
    with pytest.raises(ConfigError, match=re.escape(f"where '{fifo}' is not a regular file")):
        secret_from_file(fifo, "where", Secret)
    with pytest.raises(ConfigError, match=re.escape(f"where '{tmp_path}' is not a regular file")):
        secret_from_file(tmp_path, "where", Secret)
    with pytest.raises(ConfigError) as caught:
        secret_from_file(tmp_path / "absent", "where", Secret)
    assert str(caught.value) == (
        f"where '{tmp_path / 'absent'}' cannot be read: No such file or directory"
    )


def test_environment_variables_are_stripped_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIPRING_UNIT_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"^where TIPRING_UNIT_SECRET is not set or empty$"):
        secret_from_env("TIPRING_UNIT_SECRET", "where", Secret)
    monkeypatch.setenv("TIPRING_UNIT_SECRET", "   ")
    with pytest.raises(ConfigError, match="is not set or empty"):
        secret_from_env("TIPRING_UNIT_SECRET", "where", Secret)
    monkeypatch.setenv("TIPRING_UNIT_SECRET", f"{VALUE}\r\nX-Evil: 1")
    with pytest.raises(ConfigError) as caught:
        secret_from_env("TIPRING_UNIT_SECRET", "where", Secret)
    assert str(caught.value) == (
        "where TIPRING_UNIT_SECRET holds spaces or control characters: one token only"
    )
    monkeypatch.setenv("TIPRING_UNIT_SECRET", f"\t{VALUE}\n")
    assert secret_from_env("TIPRING_UNIT_SECRET", "where", Secret).reveal() == VALUE
