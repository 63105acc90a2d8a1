"""`tipring passwd`: the TOML edit that sets `console.password_hash`, the file write (mode kept,
atomic), the prompts, and the command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.console_auth import parse_password_hash, verify_password
from gateway.console_passwd import run_passwd, with_password_hash, write_password_hash
from gateway.errors import ConfigError

HASH = "scrypt$16$1$1$AAAA$" + "B" * 43 + "="

CONFIG = """\
# tipring on the shop's line
[line]
tone_plan = "us"   # dial tone etc.

[console]
device = "/dev/serial0"
{hash_line}
[realtime]
provider = "openai"
"""


def test_replaces_the_hash_line_keeping_everything_else() -> None:
    text = CONFIG.format(hash_line='  password_hash = "scrypt$old"  # set 2026-01-01\n')
    new = with_password_hash(text, HASH)
    assert new == CONFIG.format(hash_line=f'  password_hash = "{HASH}"\n')


def test_adds_the_hash_under_an_existing_console_table() -> None:
    new = with_password_hash(CONFIG.format(hash_line=""), HASH)
    assert f'[console]\npassword_hash = "{HASH}"\ndevice = "/dev/serial0"\n' in new
    assert new.startswith("# tipring on the shop's line\n[line]\n")


def test_appends_a_console_table_when_there_is_none() -> None:
    assert with_password_hash("", HASH) == f'[console]\npassword_hash = "{HASH}"\n'
    new = with_password_hash('[line]\ntone_plan = "us"', HASH)
    assert new == f'[line]\ntone_plan = "us"\n\n[console]\npassword_hash = "{HASH}"\n'
    assert tomllib.loads(new)["line"] == {"tone_plan": "us"}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[console\n", "the config is not valid TOML"),
        ('console = { device = "/dev/ttyS0" }\n', "could not set console.password_hash"),
        ('[console]\npassword_hash = """\nscrypt$old\n"""\n', "the edited config is not valid"),
    ],
)
def test_layouts_a_line_edit_cannot_handle_are_refused(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        with_password_hash(text, HASH)


def test_write_keeps_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "tipring.toml"
    path.write_text(CONFIG.format(hash_line=""))
    path.chmod(0o640)
    write_password_hash(path, HASH)
    assert tomllib.loads(path.read_text())["console"]["password_hash"] == HASH
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tipring.toml"]


def test_write_creates_a_missing_file_and_names_an_unwritable_one(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    write_password_hash(path, HASH)
    assert path.stat().st_mode & 0o777 == 0o640
    with pytest.raises(ConfigError, match=r"nowhere/tipring\.toml: cannot write"):
        write_password_hash(tmp_path / "nowhere" / "tipring.toml", HASH)


def test_run_passwd_sets_a_hash_of_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tipring.toml"
    answers = iter(["correct horse 42", "correct horse 42"])
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return next(answers)

    assert run_passwd(str(path), prompt) == 0
    stored = tomllib.loads(path.read_text())["console"]["password_hash"]
    assert verify_password("correct horse 42", parse_password_hash(stored))
    assert asked == ["new console password: ", "new console password again: "]
    out = capsys.readouterr()
    assert "console password set in" in out.out
    assert "correct horse" not in out.out + out.err


@pytest.mark.parametrize(
    ("answers", "why"),
    [
        (["correct horse 42", "correct horse 43"], "the two passwords differ"),
        (["short"], "too short: at least 8 characters"),
    ],
)
def test_run_passwd_changes_nothing_on_a_bad_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answers: list[str], why: str
) -> None:
    path = tmp_path / "tipring.toml"
    path.write_text("[console]\n")
    it = iter(answers)
    assert run_passwd(str(path), lambda _: next(it)) == 1
    assert path.read_text() == "[console]\n"
    assert f"tipring passwd: {why}; nothing changed" in capsys.readouterr().err


def test_tipring_passwd_command(tmp_path: Path) -> None:
    path = tmp_path / "tipring.toml"
    path.write_text('[console]\ndevice = "/dev/ttyAMA0"\n')
    # No controlling terminal (a new session), so getpass reads the answers from stdin.
    done = subprocess.run([sys.executable, "-m", "gateway", "passwd", "--config", str(path)],
                          input="new console pw\nnew console pw\n", capture_output=True,
                          text=True, timeout=120, start_new_session=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    console = tomllib.loads(path.read_text())["console"]
    assert console["device"] == "/dev/ttyAMA0"
    assert verify_password("new console pw", parse_password_hash(console["password_hash"]))
    assert "new console pw" not in done.stdout + done.stderr
