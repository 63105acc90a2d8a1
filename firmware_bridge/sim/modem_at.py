"""The simulated voice modem's AT command interpreter: `AtInterpreter`. Pure (no I/O): it keeps
the modem's settings (`AtState`), answers each command line as the profile's chipset would,
and tells the simulator what to do to the line through `ModemHooks`.
`firmware_bridge.sim.modem.ModemSimulator` feeds it every CR-terminated line in command state
and writes back what `execute` returns; on a CONNECT it starts the stream itself.

Modelled (research note §5.1): the `AT` prefix anywhere in the line (bytes before it are
ignored, as V.250 says), concatenated basic commands (`ATE0V1Q0`) and `;`-separated extended
ones (`AT-SCID=1;+VCID=1`), verbose and numeric results, `Q1`, the `=?`, `?`, `=` and action
forms, ERROR for voice commands outside class 8 and for `+VTR=?` where the profile says so,
`VCON` after `+VLS=1` where the profile says so, CONNECT for `+VTX/+VRX/+VTR` off-hook, and
the factory defaults after `ATZ`/`AT&F`/power-on: echo on (from the `AT` prefix of a line:
`command_echo`), caller ID reporting off. Accepted
without effect: gains, timers, `+VTS`, S-registers, `&D`, `&K`, country. Not modelled: data
calls, `+VCID=2` (raw), handset/speaker `+VLS` labels, ADPCM.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from firmware_bridge.sim.modem_profiles import ModemProfile

StreamKind = Literal["duplex", "receive", "transmit"]
_STREAMS: dict[str, StreamKind] = {"+VTR": "duplex", "+VRX": "receive", "+VTX": "transmit"}
_NUMERIC = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4", "VCON": "8"}
# One command of a command line: extended (to ';'), dial (to the end), &x / \x / %x, Sn, basic.
_COMMAND = re.compile(
    r"\s*(?:([+\-#][^;]*);?|(D.*)|([&\\%][A-Z]\d*)|(S\d+(?:=\d*|\?)?)|([A-Z]\d*))", re.I
)
_EXTENDED = re.compile(r"([+\-#][A-Z0-9]+)(=\?|\?|=)?(.*)")
MAX_COMMAND_CHARS = 80  # V.250 §5.2.1: a DCE takes at least 40 characters per line


class AtError(Exception):
    """The command is refused: the line's result is ERROR."""


class ModemHooks(Protocol):
    """What the interpreter makes the simulator do to the line."""

    def go_off_hook(self) -> None: ...

    def go_on_hook(self) -> None: ...

    def dial(self, digits: str) -> None: ...


@dataclass
class AtState:
    """The modem's settings (a fresh one is the factory default)."""

    vsm: int
    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    fclass: str = "0"
    vcid: int = 0
    vls: int = 0
    vsd: tuple[int, int] = (0, 50)
    registers: dict[str, str] = field(default_factory=dict)  # +VIT, +VGT, &D, S0, ...


@dataclass(frozen=True, slots=True)
class Reply:
    """What one command line gets: the bytes to send, and the stream it starts if any."""

    text: bytes
    stream: StreamKind | None = None


class AtInterpreter:
    """The command interpreter of one simulated modem (module doc). `commands` records every
    line that held an `AT`, for tests."""

    def __init__(self, profile: ModemProfile, hooks: ModemHooks) -> None:
        self.profile, self._hooks = profile, hooks
        self.state = AtState(vsm=profile.default_format)
        self.commands: list[str] = []
        self._final = "OK"
        self._stream: StreamKind | None = None
        self._handlers: dict[str, Callable[[str, str, str], list[str]]] = {
            "+FCLASS": self._fclass, "+VSM": self._vsm, "+VLS": self._vls, "+VCID": self._vcid,
            "+VTR": self._stream_command, "+VRX": self._stream_command,
            "+VTX": self._stream_command, "+VSD": self._vsd, "+VGR": self._vgr,
        }  # fmt: skip
        for name in ("+VIT", "+VGT", "+VNH", "+VRA", "+VRN", "+VTD", "+VPR", "+VRID", "+VTS"):
            self._handlers[name] = self._register
        for name in ("+GCI", "+IFC", "-SCID", "-STE", "+PCW", "+VDR"):
            self._handlers[name] = self._register
        for name, value in (("GMI", profile.manufacturer), ("GMM", profile.model)):
            self._handlers["+" + name] = self._handlers["+F" + name[1:]] = _info(value)
        self._handlers["+GMR"] = self._handlers["+FMR"] = _info(profile.revision)

    def power_on(self) -> None:
        """Factory defaults (ATZ, AT&F, a firmware reset, a replug)."""
        self.state = AtState(vsm=self.profile.default_format)

    def execute(self, line: str) -> Reply:
        """Run one command line (without its CR); lines without `AT` are ignored."""
        start = line.upper().find("AT")
        if start < 0:
            return Reply(b"")
        self.commands.append(line[start:].strip())
        self._final, self._stream = "OK", None
        info: list[str] = []
        try:
            for command in _split(line[start + 2 : start + 2 + MAX_COMMAND_CHARS]):
                info += self._one(command)
        except AtError:
            self._final, self._stream = "ERROR", None
        return Reply(self._format(info, self._final), self._stream)

    def unsolicited(self, text: str) -> bytes:
        """An unsolicited result line (RING, caller ID) as the settings print it."""
        if self.state.quiet:
            return b""
        if self.state.verbose:
            return f"\r\n{text}\r\n".encode("latin-1")
        return f"{_NUMERIC.get(text, text)}\r".encode("latin-1")

    def _format(self, info: list[str], final: str) -> bytes:
        v = self.state.verbose
        out = "".join(f"\r\n{i}\r\n" if v else f"{i}\r\n" for i in info)
        if not self.state.quiet:
            out += f"\r\n{final}\r\n" if v else f"{_NUMERIC.get(final, '4')}\r"
        return out.encode("latin-1")

    def _one(self, command: str) -> list[str]:
        head = command[:1].upper()
        if head in "+-#":
            return self._extended(command)
        if head == "D":
            self._dial(command[1:])
            return []
        return self._basic(command.upper())

    def _basic(self, command: str) -> list[str]:
        letter, value = command[:-1] if command[-1:].isdigit() else command, command[-1:]
        value = value if value.isdigit() else "0"
        match letter:
            case "E" | "V" | "Q":
                flag = {"E": "echo", "V": "verbose", "Q": "quiet"}[letter]
                setattr(self.state, flag, value == "1")
            case "Z" | "&F":
                self._hooks.go_on_hook()
                self.power_on()
            case "H":
                self._on_hook()
            case "I":
                return self._identify(value)
            case "A" | "O":
                raise AtError  # data answer / online: not modelled
            case _:
                self.state.registers[letter] = value  # &D, &K, &W, M, L, X, Sn=..., ...
        return []

    def _identify(self, value: str) -> list[str]:
        if value in ("0", "3"):
            return [self.profile.ati0 if value == "0" else self.profile.ati3]
        raise AtError

    def _extended(self, command: str) -> list[str]:
        m = _EXTENDED.fullmatch(command.strip())
        if m is None:
            raise AtError
        name, op, args = m.group(1).upper(), m.group(2) or "", m.group(3).strip()
        handler = self._handlers.get(name)
        if handler is None or (name in ("-SCID", "-STE") and not self.profile.vendor_commands):
            raise AtError
        voice = name.startswith("+V") and name not in ("+VCID", "+VRID")
        if voice and self.state.fclass != "8":
            raise AtError  # voice commands exist only in class 8 (`+VSD?` -> ERROR in class 0)
        return handler(name, op, args)

    def _fclass(self, _name: str, op: str, arg: str) -> list[str]:
        classes = self.profile.fclasses.split(",")
        if op == "=?":
            return [self.profile.fclasses]
        if op == "?":
            return [self.state.fclass]
        if op != "=" or arg not in classes:
            raise AtError
        self.state.fclass = arg
        return []

    def _vsm(self, _name: str, op: str, arg: str) -> list[str]:
        if op == "=?":
            return [f'{f.code},"{f.name}",{f.bits},0,(8000),(0),(0)' for f in self.profile.formats]
        if op == "?":
            return [f"{self.state.vsm},8000,0,0"]
        parts = [p.strip() for p in arg.split(",")] if op == "=" else []
        if len(parts) < 2 or not parts[0].isdigit() or parts[1] != "8000":
            raise AtError
        fmt = self.profile.format(int(parts[0]))
        if fmt is None or fmt.encoding == "adpcm":
            raise AtError
        self.state.vsm = fmt.code
        return []

    def _vls(self, _name: str, op: str, arg: str) -> list[str]:
        if op == "=?":
            return list(self.profile.vls_test)
        if op == "?":
            return [str(self.state.vls)]
        if op != "=" or arg not in ("0", "1"):
            raise AtError  # handset, speaker and snoop labels are not modelled
        if arg == "0":
            self._on_hook()
        else:
            self.state.vls = 1
            self._hooks.go_off_hook()
            self._final = self.profile.vls_reply
        return []

    def _on_hook(self) -> None:
        if self.state.vls and self.profile.forgets_vcid_after_call:
            self.state.vcid = 0  # some Conexant units drop +VCID after a call (HA #57765)
        self.state.vls = 0
        self._hooks.go_on_hook()

    def _stream_command(self, name: str, op: str, _arg: str) -> list[str]:
        if op == "=?" and self.profile.action_test_forms:
            return ["(0)"]
        kind = _STREAMS[name]
        if op or self.state.vls != 1 or (kind == "duplex" and not self.profile.full_duplex):
            raise AtError  # USR: ERROR "if not connected to an off-hook line"
        self._stream, self._final = kind, "CONNECT"
        return []

    def _vcid(self, _name: str, op: str, arg: str) -> list[str]:
        if op == "=?":
            return ["(0-1)"]
        if op == "?":
            return [str(self.state.vcid)]
        if op != "=" or arg not in ("0", "1"):
            raise AtError
        self.state.vcid = int(arg)
        return []

    def _vsd(self, _name: str, op: str, arg: str) -> list[str]:
        if op == "=?":
            return ["(0,127-129),(0-255)"]
        if op == "?":
            return [f"{self.state.vsd[0]},{self.state.vsd[1]}"]
        parts = arg.split(",") if op == "=" else []
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise AtError
        self.state.vsd = (int(parts[0]), int(parts[1]))
        return []

    def _vgr(self, name: str, op: str, arg: str) -> list[str]:
        if op == "=?":
            return [f"(0-{self.profile.vgr_max})" if self.profile.vgr_max else "(0)"]
        if op == "=" and (not arg.isdigit() or int(arg) > self.profile.vgr_max):
            raise AtError  # CX930xx: 0 (automatic gain control) is the only value
        return self._register(name, op, arg)

    def _register(self, name: str, op: str, arg: str) -> list[str]:
        if op == "=":
            self.state.registers[name] = arg
        return [self.state.registers.get(name, "0")] if op == "?" else []

    def _dial(self, dial_string: str) -> None:
        digits = "".join(c for c in dial_string.upper() if c in "0123456789*#ABCD")
        if not dial_string.rstrip().endswith(";"):
            self._final = "NO CARRIER"  # a data call: not modelled
            return
        self.state.vls = 1
        self._hooks.go_off_hook()
        self._hooks.dial(digits)


def command_echo(line: bytes, data: bytes) -> bytes:
    """What an echoing (E1) modem sends back of `data`, a piece of one command line that
    arrives after `line` (the same line's earlier bytes): V.250 lets a DCE leave characters
    before the `AT` prefix unechoed, and it does, so audio sent to a modem that fell back
    to command state (a firmware reset) is swallowed, not mirrored."""
    prefix = (line + data).upper().find(b"AT")
    if prefix < 0:
        return b""
    if prefix + 2 <= len(line):  # the prefix came earlier: that part was echoed then
        return data
    return (line + data)[prefix:]  # the prefix ends here (its `A` may end `line`)


def split_lines(data: bytes) -> list[bytes]:
    """`data` cut after each CR (a command line's end); the last piece may be unfinished."""
    pieces = data.split(b"\r")
    return [p + b"\r" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def _split(body: str) -> list[str]:
    """The commands of one line after `AT`; `AtError` on characters that start none."""
    commands, pos = [], 0
    while pos < len(body.rstrip()):
        m = _COMMAND.match(body, pos)
        if m is None or m.end() == pos:
            raise AtError
        commands.append(next(g for g in m.groups() if g is not None).strip())
        pos = m.end()
    return [c for c in commands if c]


def _info(value: str) -> Callable[[str, str, str], list[str]]:
    def handler(_name: str, op: str, _arg: str) -> list[str]:
        if op in ("=", "=?"):
            raise AtError
        return [value]

    return handler
