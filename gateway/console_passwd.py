"""`tipring passwd`: set the serial console's password. Asks twice (no echo), hashes it with
scrypt (`gateway.console_auth`) and writes the hash as `password_hash` in the `[console]` table
of tipring.toml; `write_password_hash` is also what the app's `set_console_password` can use.

The file is edited as text by `gateway.config_edit`, so the operator's comments and layout stay:
the `password_hash = ...` line of `[console]` is replaced, or added under the `[console]` header,
or a `[console]` table is appended; a layout that simple edit does not understand (such as
`console = { ... }` inline) is refused and nothing is written. The new file replaces the old
atomically, with its mode, owner and group. The password itself is never printed or stored.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from gateway.config_edit import with_settings, write_settings
from gateway.console_auth import hash_password, new_password_problem
from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/tipring/tipring.toml"
_KEY = "console.password_hash"


def with_password_hash(text: str, password_hash: str) -> str:
    """`text` (a TOML document) with `console.password_hash` set to `password_hash`;
    `ConfigError` if `text` is not valid TOML or the edit would change anything else."""
    return with_settings(text, {_KEY: password_hash})


def write_password_hash(path: str | os.PathLike[str], password_hash: str) -> None:
    """Set `console.password_hash` in config file `path` (created if missing), atomically,
    keeping its mode, owner and group. `ConfigError` naming the file if it cannot."""
    write_settings(path, {_KEY: password_hash})


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
