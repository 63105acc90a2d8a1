"""deploy_pi/99-tipring.rules: every line is well-formed udev syntax, and the rules give the
right name to known devices. systemd 252 (bookworm) has no `udevadm verify`, and `udevadm
test` needs the device plugged in, so the rules run here through a small evaluator of the
subset they use (==, !=, =, += on SUBSYSTEM, ACTION, KERNEL, ENV{...}; globs and `|`
alternatives; GOTO/LABEL), against the properties `udevadm info -q property` shows for
those devices once 60-serial.rules has imported usb_id.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import pytest

from tests.deploy_pi.rig import DEPLOY

RULES = DEPLOY / "99-tipring.rules"
PAIR = re.compile(
    r'\s*(?P<key>[A-Z]+(?:\{[A-Za-z_]+\})?)\s*(?P<op>==|!=|\+=|=)\s*"(?P<val>[^"]*)"\s*(,|$)'
)
MATCH_KEYS = {"SUBSYSTEM", "ACTION", "KERNEL", "ENV"}
ASSIGN_KEYS = {"SYMLINK", "GOTO", "LABEL", "GROUP", "MODE", "ENV", "TAG"}


def parse(line: str) -> list[tuple[str, str, str]]:
    """A rule line as (key, op, value) triples; fails on anything the evaluator does not know."""
    pairs, pos = [], 0
    while pos < len(line):
        m = PAIR.match(line, pos)
        assert m, f"unparsable at column {pos}: {line}"
        pairs.append((m["key"], m["op"], m["val"]))
        pos = m.end()
    return pairs


def rules(text: str | None = None) -> list[list[tuple[str, str, str]]]:
    text = RULES.read_text() if text is None else text
    return [parse(x) for x in text.splitlines() if x.strip() and not x.lstrip().startswith("#")]


@dataclass
class Device:
    """A tty as udev sees it at the time our rules run."""

    kernel: str
    env: dict[str, str]
    subsystem: str = "tty"
    action: str = "add"
    symlinks: list[str] = field(default_factory=list)
    assigned: dict[str, str] = field(default_factory=dict)


def _value(dev: Device, key: str) -> str:
    if key.startswith("ENV{"):
        return dev.env.get(key[4:-1], "")
    return {"SUBSYSTEM": dev.subsystem, "ACTION": dev.action, "KERNEL": dev.kernel}[key]


def _matches(value: str, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def apply(dev: Device, text: str | None = None) -> Device:
    """Run the rules (the shipped file, or `text`) over `dev` as udevd would; returns it with
    its symlinks and assignments."""
    parsed = rules(text)
    dev.env = dict(dev.env)  # ENV{} assignments below must not leak into the caller's dict
    labels = {r[0][2]: i for i, r in enumerate(parsed) if r[0][0] == "LABEL"}
    i = 0
    while i < len(parsed):
        rule, goto = parsed[i], None
        matched = all(
            _matches(_value(dev, k), v) == (op == "==") for k, op, v in rule if op in ("==", "!=")
        )
        if matched:
            for k, op, v in rule:
                if k == "SYMLINK":
                    dev.symlinks.append(v)
                elif k == "GOTO":
                    goto = v
                elif op in ("=", "+=") and k != "LABEL":
                    dev.assigned[k] = v
                    if k.startswith("ENV{"):
                        dev.env[k[4:-1]] = v
        i = labels[goto] + 1 if goto else i + 1
    return dev


def usb(
    vid: str, pid: str, model: str = "USB_Serial", iface: str = "00", serial: str = ""
) -> dict[str, str]:
    return {"ID_BUS": "usb", "ID_VENDOR_ID": vid, "ID_MODEL_ID": pid, "ID_MODEL": model,
            "ID_USB_INTERFACE_NUM": iface, "ID_SERIAL_SHORT": serial}  # fmt: skip


def test_every_line_parses_with_known_keys() -> None:
    for rule in rules():
        for key, op, _ in rule:
            base = key.split("{")[0]
            assert base in (MATCH_KEYS if op in ("==", "!=") else ASSIGN_KEYS), (key, op)


def test_every_goto_has_its_label() -> None:
    parsed = rules()
    labels = {r[0][2] for r in parsed if r[0][0] == "LABEL"}
    gotos = {v for r in parsed for k, _, v in r if k == "GOTO"}
    assert labels == {"tipring_perm", "tipring_end"}
    assert gotos == labels


@pytest.mark.parametrize(
    ("kernel", "env", "name"),
    [
        ("ttyUSB0", usb("0403", "6001", "FT232R_USB_UART"), "tipring-adapter"),
        ("ttyUSB0", usb("10c4", "ea60", "CP2102_USB_to_UART_Bridge_Controller"), "tipring-adapter"),
        ("ttyUSB0", usb("1a86", "7523", "USB_Serial"), "tipring-adapter"),
        ("ttyACM0", usb("2e8a", "000a", "Pico"), "tipring-adapter"),
        ("ttyACM0", usb("1209", "7470", "tipring_adapter_2FXO"), "tipring-adapter"),
        ("ttyACM0", usb("0572", "1329", "USB_Modem"), "tipring-modem"),
        ("ttyACM1", usb("0baf", "0303", "U.S.Robotics_USB_Modem"), "tipring-modem"),
        # the second port of an FT2232: not the adapter
        ("ttyUSB1", usb("0403", "6010", "Dual_RS232", iface="01"), None),
        # a device that is none of ours (a USB GPS)
        ("ttyACM0", usb("1546", "01a7", "u-blox_7"), None),
        # the Pi's own UART
        ("ttyAMA0", {}, None),
    ],
)
def test_names(kernel: str, env: dict[str, str], name: str | None) -> None:
    dev = apply(Device(kernel, env))
    assert dev.symlinks == ([name] if name else [])
    if name:
        # dialout may open it, ModemManager keeps off, systemd gets a .device unit
        assert dev.assigned == {"GROUP": "dialout", "MODE": "0660",
                                "ENV{ID_MM_DEVICE_IGNORE}": "1", "TAG": "systemd"}  # fmt: skip


def test_removal_and_other_subsystems_are_left_alone() -> None:
    assert apply(Device("ttyUSB0", usb("0403", "6001"), action="remove")).symlinks == []
    assert apply(Device("hidraw0", usb("0403", "6001"), subsystem="hidraw")).symlinks == []


def test_pinning_by_serial_as_the_comments_say() -> None:
    """Uncommenting the two 'By serial' lines names that board, and no longer any other board
    on the same chip; a modem keeps its name."""
    text = RULES.read_text()
    pinned = text.replace('#ENV{ID_SERIAL_SHORT}=="E6616407E3593421"',
                          'ENV{ID_SERIAL_SHORT}=="E6616407E3593421"')  # fmt: skip
    pinned = pinned.replace('#ENV{TIPRING_PINNED}="1"', 'ENV{TIPRING_PINNED}="1"')
    assert pinned.count("\nENV{ID_SERIAL_SHORT}") == pinned.count('\nENV{TIPRING_PINNED}="1"') == 1
    ours = usb("0403", "6001", "FT232R_USB_UART", serial="E6616407E3593421")
    other = usb("0403", "6001", "FT232R_USB_UART", serial="A50285BI")
    modem = usb("0572", "1329", "USB_Modem")
    assert apply(Device("ttyUSB0", ours), pinned).symlinks == ["tipring-adapter"]
    assert apply(Device("ttyUSB1", other), pinned).symlinks == []
    assert apply(Device("ttyACM0", modem), pinned).symlinks == ["tipring-modem"]
    # shipped as it is, both FTDI boards would claim the name
    assert apply(Device("ttyUSB1", other)).symlinks == ["tipring-adapter"]
