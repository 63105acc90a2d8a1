"""`gateway.config_edit`: settings edited into tipring.toml as text (comments and layout kept),
values that round-trip through tomllib, layouts the edit refuses, and the atomic file write."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config_edit import with_settings, write_settings
from gateway.errors import ConfigError

CONFIG = """\
# tipring on the shop's line
[line]
tone_plan = "us"   # dial tone etc.

[line.fxo]
# rings before we pick up; the owner wants a chance to answer first
answer_after_rings = 4   # was 2
caller_id = true

[realtime]
voice = "alloy"
"""

scalars = (
    st.text()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
)
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


def test_replaces_a_value_keeping_every_other_line_byte_identical() -> None:
    new = with_settings(CONFIG, {"line.fxo.answer_after_rings": 2, "realtime.voice": 'a"b'})
    expected = CONFIG.replace("answer_after_rings = 4   # was 2", "answer_after_rings = 2")
    assert new == expected.replace('voice = "alloy"', r'voice = "a\"b"')


def test_inserts_into_an_existing_table_under_its_header() -> None:
    new = with_settings(CONFIG, {"realtime.model": "gpt-x", "realtime.temperature": 0.6})
    assert new.endswith('[realtime]\nmodel = "gpt-x"\ntemperature = 0.6\nvoice = "alloy"\n')
    assert new.startswith(CONFIG.split("[realtime]")[0])


def test_appends_a_table_that_is_not_there() -> None:
    new = with_settings(CONFIG, {"store.retention_days": 30, "tools.builtin.end_call": False})
    assert new == CONFIG + "\n[store]\nretention_days = 30\n\n[tools.builtin]\nend_call = false\n"
    assert with_settings("", {"a.b": [1, [2.5, "x"]]}) == '[a]\nb = [1, [2.5, "x"]]\n'
    assert with_settings("[a]\nx = 1", {"b.c": 1}) == "[a]\nx = 1\n\n[b]\nc = 1\n"


def test_finds_a_nested_table_header_written_with_spaces_and_a_comment() -> None:
    text = "[line]\nanswer_after_rings = 9\n\n[ line . fxo ]  # the FXO port\nmode = 1\n"
    new = with_settings(text, {"line.fxo.answer_after_rings": 3})
    assert new == text.replace("mode = 1", "answer_after_rings = 3\nmode = 1")
    assert tomllib.loads(new)["line"]["answer_after_rings"] == 9


def test_sets_a_root_key_below_the_opening_comments() -> None:
    new = with_settings("# tipring\n\n[line]\nx = 1\n", {"version": 2})
    assert new == "# tipring\n\nversion = 2\n[line]\nx = 1\n"
    assert with_settings(new, {"version": 3}) == new.replace("2", "3")


def test_keeps_crlf_line_endings() -> None:
    new = with_settings("[a]\r\nx = 1\r\n", {"a.x": 2, "a.y": 3})
    assert new == "[a]\r\ny = 3\r\nx = 2\r\n"


def test_strings_with_quotes_backslashes_controls_and_unicode_round_trip() -> None:
    value = 'say "hi"\\n\n\t\r\x00\x1f\x7f é ☎ \U0001f4de \u2028'
    new = with_settings(CONFIG, {"realtime.voice": value})
    assert tomllib.loads(new)["realtime"]["voice"] == value
    assert new.count("\n") == CONFIG.count("\n")


@given(value=toml_values)
def test_any_value_reads_back_as_written(value: object) -> None:
    new = with_settings(CONFIG, {"line.fxo.answer_after_rings": value, "new.key": value})
    doc = tomllib.loads(new)
    assert doc["line"]["fxo"]["answer_after_rings"] == value
    assert doc["new"]["key"] == value
    assert new.count("\n") == CONFIG.count("\n") + 3


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('line = { fxo = { answer_after_rings = 2 } }\n', "line.fxo.answer_after_rings",
         "could not set line.fxo.answer_after_rings by a simple edit"),
        ("[line]\nfxo.answer_after_rings = 2\n", "line.fxo.answer_after_rings",
         "could not set line.fxo.answer_after_rings by a simple edit"),
        ("fxo.answer_after_rings = 2\n[line]\n", "fxo.answer_after_rings",
         "could not set fxo.answer_after_rings by a simple edit"),
        ("[[line.fxo]]\nanswer_after_rings = 2\n", "line.fxo.answer_after_rings",
         "line.fxo is not a table"),
        ('[console]\nmotd = """\npassword_hash = 1\n"""\n', "console.password_hash",
         "the result differs elsewhere too"),
        ("[line.fxo]\nanswer_after_rings = [\n  2,\n]\n", "line.fxo.answer_after_rings",
         r"its old value \(line 2\) spans several lines"),
        ("[line.fxo\n", "line.fxo.x", r"not valid TOML: .*\(at line 1, column 10\)"),
        ("[line]\n", "line.fxo rings", "must be a bare TOML key"),
        ("[line]\n", "line..x", "must be a bare TOML key"),
    ],
)  # fmt: skip
def test_layouts_a_line_edit_cannot_handle_are_refused(text: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        with_settings(text, {key: 3})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (float("inf"), "only finite numbers"),
        (float("nan"), "only finite numbers"),
        (2**63, "64-bit"),
        ("\ud800", "lone surrogate"),
        ({"a": 1}, "a dict is not a TOML value"),
        ([1, None], "a NoneType is not a TOML value"),
    ],
)
def test_values_toml_cannot_hold_are_refused(value: object, why: str) -> None:
    with pytest.raises(ConfigError, match=f"cannot set realtime.voice.*{why}"):
        with_settings(CONFIG, {"realtime.voice": value})


def test_a_nan_elsewhere_in_the_file_does_not_block_an_edit() -> None:
    assert with_settings("[a]\nx = nan\n", {"a.y": 1}) == "[a]\ny = 1\nx = nan\n"


def test_write_keeps_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "tipring.toml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    write_settings(path, {"line.fxo.answer_after_rings": 2})
    assert tomllib.loads(path.read_text())["line"]["fxo"]["answer_after_rings"] == 2
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tipring.toml"]


def test_write_creates_a_missing_file_with_mode_0640(tmp_path: Path) -> None:
    path = tmp_path / "tipring.toml"
    write_settings(path, {"store.retention_days": 7})
    assert path.read_text() == "[store]\nretention_days = 7\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_write_edits_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text("[a]\nx = 1\n")
    (tmp_path / "tipring.toml").symlink_to(real)
    write_settings(tmp_path / "tipring.toml", {"a.x": 2})
    assert (tmp_path / "tipring.toml").is_symlink()
    assert real.read_text() == "[a]\nx = 2\n"


def test_a_refused_write_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "tipring.toml"
    path.write_text("# mine\nline = { fxo = { answer_after_rings = 2 } }\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"tipring\.toml: could not set line\.fxo"):
        write_settings(path, {"line.fxo.answer_after_rings": 3})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tipring.toml"]


def test_write_names_a_file_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere/tipring\.toml: cannot write"):
        write_settings(tmp_path / "nowhere" / "tipring.toml", {"a.b": 1})
