"""Setting values in tipring.toml by editing it as text, so the operator's comments and layout
stay; used by `tipring passwd` (`gateway.console_passwd`) and whatever else changes the config.

For each dotted key (`line.fxo.answer_after_rings`) the `key = ...` line in the `[line.fxo]`
section is replaced (keeping its indent; a value spanning several lines is refused), or the key is
added right under the header, or a `[line.fxo]` table is appended. Values are written by the small
TOML value writer here. The result is parsed back (tomllib) and must equal the old document with
exactly those keys set to those values, else `ConfigError` and nothing is written: layouts this
edit does not understand (`line = { ... }` inline, `fxo.x = 1` dotted keys under `[line]`, arrays
of tables) are left to the operator. `write_settings` replaces the file atomically, keeping its
mode, owner and group.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

NEW_FILE_MODE = 0o640  # root:tipring, as deploy_pi installs the config
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ANY_HEADER = re.compile(r"\s*\[")
_BLANK_OR_COMMENT = re.compile(r"\s*(#.*)?\s*")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # TOML 1.0 §Integer: the range of an i64
_STRING_ESCAPES = str.maketrans(
    {chr(c): f"\\u{c:04X}" for c in [*range(0x20), 0x7F]}  # TOML forbids raw control chars
    | {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
)

# (key, dotted key, `key = value` without the newline), grouped by table ("" is the root table)
_Entries = list[tuple[str, str, str]]


def with_settings(text: str, changes: Mapping[str, object]) -> str:
    """`text` (a TOML document) with each dotted key of `changes` set to its value (str, int,
    float, bool or a list of those); `ConfigError` if `text` is not valid TOML, a key or value
    cannot be written, or the edit would change anything else."""
    old = _parse(text, "the config")
    tables: dict[str, _Entries] = {}
    for dotted, value in changes.items():
        table, key = _split_key(dotted)
        tables.setdefault(table, []).append((key, dotted, f"{key} = {toml_value(value, dotted)}"))
    expected = _expected(old, changes)
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in text else "\n"
    for table, entries in tables.items():
        _set_in_table(lines, table, entries, newline)
    new_text = "".join(lines)
    keys = ", ".join(changes)
    try:
        new = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"could not set {keys} by a simple edit: the edited config is not "
            f"valid TOML ({exc}); set it by hand"
        ) from None
    if not _same(new, expected):
        raise ConfigError(
            f"could not set {keys} by a simple edit: the result differs elsewhere "
            "too (a table written inline, as dotted keys or as an array of "
            "tables?); set it by hand"
        )
    return new_text


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None


def _split_key(dotted: str) -> tuple[str, str]:
    """(table, key) of a dotted key, every part a bare TOML key."""
    parts = dotted.split(".")
    if not all(_BARE_KEY.fullmatch(part) for part in parts):
        raise ConfigError(
            f"cannot set {dotted!r}: each part of a key must be a bare TOML key "
            "(letters, digits, '_' and '-')"
        )
    return ".".join(parts[:-1]), parts[-1]


def _expected(old: dict[str, Any], changes: Mapping[str, object]) -> dict[str, Any]:
    """`old` with the changes applied: what the edited text must parse to."""
    doc = copy.deepcopy(old)
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        table: object = doc
        for part in path:
            table = table.setdefault(part, {}) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(
                f"could not set {dotted}: {'.'.join(path)} is not a table "
                "(an array of tables, or a value); set it by hand"
            )
        table[key] = value
    return doc


def _same(a: object, b: object) -> bool:
    """Deep equality that tells bool from int from float, and nan from a number."""
    if _kind(a) is not _kind(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)  # TOML allows nan elsewhere in the file; nan != nan
    return a == b


def _kind(value: object) -> type:
    return next(
        (k for k in (bool, int, float, str, list, dict) if isinstance(value, k)), type(value)
    )


def _set_in_table(lines: list[str], table: str, entries: _Entries, newline: str) -> None:
    """Replace or add each entry in the section of `table`, or append the table."""
    if table:
        header = next(
            (i for i, line in enumerate(lines) if _header_re(table).fullmatch(line)), None
        )
        if header is None:
            _append_table(lines, table, entries, newline)
            return
        start = insert_at = header + 1
    else:
        start = 0  # the root table: new keys go under the file's opening comments
        opening = (i for i, line in enumerate(lines) if not _BLANK_OR_COMMENT.fullmatch(line))
        insert_at = next(opening, len(lines))
    end = next((i for i in range(start, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
    insert_at = min(insert_at, end)
    for key, dotted, entry in entries:
        found = next((i for i in range(start, end) if _key_re(key).match(lines[i])), None)
        if found is not None:
            _replace_line(lines, found, entry, dotted)
            continue
        if insert_at > 0 and not lines[insert_at - 1].endswith("\n"):
            lines[insert_at - 1] += newline
        lines.insert(insert_at, entry + newline)
        insert_at += 1
        end += 1


def _header_re(table: str) -> re.Pattern[str]:
    dots = r"\s*\.\s*".join(re.escape(part) for part in table.split("."))
    return re.compile(rf"\s*\[\s*{dots}\s*\]\s*(#.*)?\s*")


def _key_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"(\s*){re.escape(key)}\s*=")


def _replace_line(lines: list[str], index: int, entry: str, dotted: str) -> None:
    """Replace the `key = value` line at `index`, keeping its indent and line ending."""
    line = lines[index]
    try:
        tomllib.loads(line)  # the whole document parses, so only a multi-line value fails here
    except tomllib.TOMLDecodeError:
        raise ConfigError(
            f"could not set {dotted} by a simple edit: the edited config is not "
            f"valid TOML, as its old value (line {index + 1}) spans several "
            "lines; set it by hand"
        ) from None
    body = line.rstrip("\r\n")
    indent = line[: len(line) - len(line.lstrip())]
    lines[index] = indent + entry + line[len(body) :]


def _append_table(lines: list[str], table: str, entries: _Entries, newline: str) -> None:
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    if lines and lines[-1].strip():
        lines.append(newline)  # a blank line before the new table
    lines.append(f"[{table}]{newline}")
    lines.extend(entry + newline for _, _, entry in entries)


def toml_value(value: object, dotted: str) -> str:
    """`value` written as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ConfigError(f"cannot set {dotted} to {value}: TOML integers are 64-bit")
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot set {dotted} to {value}: only finite numbers are allowed")
        return repr(float(value))  # shortest round-tripping form: has '.' or 'e', valid TOML
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"cannot set {dotted}: the text has a lone surrogate") from None
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item, dotted) for item in value) + "]"
    raise ConfigError(
        f"cannot set {dotted}: a {type(value).__name__} is not a TOML value "
        "this edit writes (str, int, float, bool or a list)"
    )


def write_settings(path: str | os.PathLike[str], changes: Mapping[str, object]) -> None:
    """Set `changes` (as `with_settings`) in config file `path` (created with mode 0640 if
    missing), atomically, keeping its mode, owner and group. `ConfigError` naming the file."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
        info: os.stat_result | None = target.stat()
    except FileNotFoundError:
        text, info = "", None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read: {exc}") from None
    try:
        new_text = with_settings(text, changes)
    except ConfigError as exc:
        raise ConfigError(f"{target}: {exc}") from None
    try:
        _replace_file(Path(os.path.realpath(target)), new_text, info)  # edit through a symlink
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror or exc}") from None


def _replace_file(target: Path, text: str, info: os.stat_result | None) -> None:
    """Write `text` to a temporary file beside `target` (mode 0600 until done), fsync it, give
    it `info`'s mode, owner and group, rename it over `target` and fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
            if info is not None:
                now = os.fstat(out.fileno())
                if (now.st_uid, now.st_gid) != (info.st_uid, info.st_gid):
                    os.fchown(out.fileno(), info.st_uid, info.st_gid)  # root editing root:tipring
            # after chown, which may clear setuid/setgid bits
            os.fchmod(out.fileno(), NEW_FILE_MODE if info is None else info.st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
