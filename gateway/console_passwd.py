"""`tipring passwd`: set the serial console's password. Asks twice (no echo), hashes it with
scrypt (`gateway.console_auth`) and writes the hash as `password_hash` in the `[console]` table
of tipring.toml; `write_password_hash` is also what the app's `set_console_password` can use.

The file is edited as text, not re-serialised, so the operator's comments and layout stay: the
`password_hash = ...` line of `[console]` is replaced, or added under the `[console]` header,
or a `[console]` table is appended. The result is parsed back (tomllib) and must equal the old
document with only that key changed, else nothing is written (a layout this simple edit does
not understand, such as `console = { ... }` inline). The new file replaces the old atomically,
with its mode, owner and group. The password itself is never printed or stored.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.console_auth import hash_password, new_password_problem
from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/tipring/tipring.toml"
NEW_FILE_MODE = 0o640  # root:tipring, as deploy_pi installs the config
_CONSOLE_HEADER = re.compile(r"\s*\[\s*console\s*\]\s*(#.*)?")
_ANY_HEADER = re.compile(r"\s*\[")
_HASH_LINE = re.compile(r"(\s*)password_hash\s*=")


def with_password_hash(text: str, password_hash: str) -> str:
    """`text` (a TOML document) with `console.password_hash` set to `password_hash`;
    `ConfigError` if `text` is not valid TOML or the edit would change anything else."""
    old = _parse(text, "the config")
    lines = text.splitlines(keepends=True)
    entry = f'password_hash = "{password_hash}"\n'
    header = next((i for i, line in enumerate(lines) if _CONSOLE_HEADER.fullmatch(line.rstrip())),
                  None)  # fmt: skip
    if header is None and "console" in old:
        raise ConfigError("could not set console.password_hash by a simple edit: console is "
                          "not written as a [console] table; set it by hand")  # fmt: skip
    if header is None:
        gap = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        new_text = f"{text}{gap}[console]\n{entry}"
    else:
        end = next((i for i in range(header + 1, len(lines)) if _ANY_HEADER.match(lines[i])),
                   len(lines))  # fmt: skip
        found = next((i for i in range(header + 1, end) if _HASH_LINE.match(lines[i])), None)
        if found is None:
            lines.insert(header + 1, entry)
        else:
            indent = _HASH_LINE.match(lines[found])
            lines[found] = (indent.group(1) if indent else "") + entry
        new_text = "".join(lines)
    new = _parse(new_text, "the edited config")
    if _without_hash(new) != _without_hash(old) or _hash_of(new) != password_hash:
        raise ConfigError("could not set console.password_hash by a simple edit: the result "
                          "differs elsewhere too; set it by hand")  # fmt: skip
    return new_text


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None


def _hash_of(doc: dict[str, Any]) -> object:
    console = doc.get("console")
    return console.get("password_hash") if isinstance(console, dict) else None


def _without_hash(doc: dict[str, Any]) -> dict[str, Any]:
    rest = dict(doc)
    console = rest.get("console")
    if isinstance(console, dict):
        console = {k: v for k, v in console.items() if k != "password_hash"}
        if console:
            rest["console"] = console
        else:
            del rest["console"]
    return rest


def write_password_hash(path: str | os.PathLike[str], password_hash: str) -> None:
    """Set `console.password_hash` in config file `path` (created if missing), atomically,
    keeping its mode, owner and group. `ConfigError` naming the file if it cannot."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8") if target.exists() else ""
        info = target.stat() if target.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read: {exc}") from None
    new_text = with_password_hash(text, password_hash)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new_text)
            out.flush()
            os.fsync(out.fileno())
        if info is not None:
            os.chmod(tmp, info.st_mode & 0o7777)
            if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
                os.chown(tmp, info.st_uid, info.st_gid)  # root editing root:tipring 0640
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{target}: cannot write: {exc.strerror or exc}") from None


def run_passwd(config_path: str = DEFAULT_CONFIG_PATH,
               prompt: Callable[[str], str] = getpass.getpass) -> int:  # fmt: skip
    """The `tipring passwd` command; returns the exit status (0: set, 1: nothing changed)."""
    try:
        password = prompt("new console password: ")
        problem = new_password_problem(password)
        if problem is None and prompt("new console password again: ") != password:
            problem = "the two passwords differ"
    except (EOFError, KeyboardInterrupt):
        problem = "no password given"
    if problem is not None:
        print(f"tipring passwd: {problem}; nothing changed", file=sys.stderr)
        return 1
    try:
        write_password_hash(config_path, hash_password(password))
    except ConfigError as exc:
        print(f"tipring passwd: {exc}; nothing changed", file=sys.stderr)
        return 1
    print(f"console password set in {config_path} (console.password_hash); "
          "restart tipring for the console to use it")  # fmt: skip
    return 0
