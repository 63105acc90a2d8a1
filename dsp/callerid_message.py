"""Caller ID messages: the records, and building and parsing SDMF, MDMF and DTMF strings.

Owns the presentation layer of on-hook caller ID: Telcordia GR-30-CORE single data message
format (SDMF, type 0x04) and multiple data message format (MDMF, type 0x80), the ETSI
EN 300 659-3 call set-up message (type 0x80 with the same parameter codes), and the ETSI
DTMF caller ID digit strings. `dsp.callerid` (streaming decoder and encoder) is its user and
re-exports everything public here.

DTMF strings supported (the variants spandsp and Asterisk handle; EN 300 659-1 Annex B):
- `A<number>C`, optionally with `D<redirecting number>` and `B<2-digit code>` fields before the
  `C` (Belgium, Brazil, Denmark, Finland, Netherlands, Sweden, ...); `B00C`: number
  unavailable, `B10C`: private (other codes read as unavailable). The redirecting number is
  parsed and dropped.
- `D<number>C` (Taiwan, Kuwait): a string that starts with `D` is the caller's number.
- `A<number>#` and `<number>#` (Denmark, Netherlands); `D1#` private, `D2#` (international) and
  `D3#` (technical reasons) unavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dsp.errors import DspError, DspInputError

Reason = Literal["private", "unavailable"]

SDMF_TYPE = 0x04  # GR-30-CORE: SDMF calling number delivery
MDMF_TYPE = 0x80  # GR-30-CORE MDMF; EN 300 659-3 "call set-up"
# Other message types that are bursts but not caller ID: GR-30 SDMF / MDMF message waiting
# (0x06, 0x82); EN 300 659-3 advice of charge (0x86) and short message service (0x89).
KNOWN_TYPES = (SDMF_TYPE, 0x06, MDMF_TYPE, 0x82, 0x86, 0x89)
PARAM_DATE = 0x01  # MMDDHHMM, 8 ASCII digits
PARAM_NUMBER = 0x02  # calling line identity
PARAM_NUMBER_ABSENT = 0x04  # reason for absence of the number: 'P' private, 'O' unavailable
PARAM_NAME = 0x07  # calling party name
PARAM_NAME_ABSENT = 0x08  # reason for absence of the name
MAX_SDMF_NUMBER_CHARS = 10  # GR-30-CORE SDMF: up to 10 digits
MAX_NUMBER_CHARS = 20  # EN 300 659-3 calling line identity: up to 20 characters
# EN 300 659-3 allows a 50-character name; GR-30-CORE names are at most 15.
MAX_NAME_CHARS = 50
MAX_DTMF_NUMBER_DIGITS = 20
_ABSENCE_CODE = {"private": b"P", "unavailable": b"O"}


@dataclass(frozen=True, slots=True)
class CallerId:
    """One caller ID delivery. `when` is "MMDDHHMM" as sent (local time of the exchange);
    a reason is set when the exchange withheld the number or name ("private") or had none
    ("unavailable"). Absent fields are None."""

    number: str | None = None
    name: str | None = None
    when: str | None = None
    number_reason: Reason | None = None
    name_reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class CallerIdError:
    """A burst that was heard but gave no caller ID: `reason` ("bad checksum", "truncated
    burst", "bad length", "bad date", "bad format", "unsupported message type", "bad number")
    and the raw bytes (DTMF: the digits, ASCII) received."""

    reason: str
    raw: bytes


class CallerIdFormatError(DspError):
    """`parse_message` / `parse_dtmf` got a malformed message; `reason` as in CallerIdError."""

    def __init__(self, reason: str, raw: bytes, detail: str = "") -> None:
        super().__init__(f"caller ID message: {reason}{detail} in {raw.hex(' ')}")
        self.reason = reason
        self.raw = raw

    def as_record(self) -> CallerIdError:
        """The streaming decoder's record of this failure."""
        return CallerIdError(self.reason, self.raw)


def checksum(data: bytes) -> int:
    """GR-30 / EN 300 659-3: two's complement of the modulo-256 sum of all other bytes."""
    return -sum(data) & 0xFF


def _text(value: str | None, what: str, limit: int) -> bytes:
    if value is None:
        return b""
    if len(value) > limit or not all(" " <= ch <= "~" for ch in value):
        raise DspInputError(f"caller ID {what} {value!r}: want <= {limit} printable ASCII chars")
    return value.encode("ascii")


def _finish(kind: int, body: bytes) -> bytes:
    msg = bytes([kind, len(body)]) + body
    return msg + bytes([checksum(msg)])


def build_sdmf(callerid: CallerId) -> bytes:
    """SDMF message (type, length, MMDDHHMM + number or 'P'/'O', checksum). Needs `when`;
    no name."""
    if callerid.when is None or callerid.name is not None or callerid.name_reason is not None:
        raise DspInputError("SDMF carries a date and a number only: `when` is required")
    when = _date_field(callerid.when)
    if callerid.number is not None:
        number = _text(callerid.number, "number", MAX_SDMF_NUMBER_CHARS)
        if number in (b"P", b"O"):
            raise DspInputError(f"SDMF number {callerid.number!r} reads as an absence code")
    elif callerid.number_reason is not None:
        number = _ABSENCE_CODE[callerid.number_reason]
    else:
        raise DspInputError("SDMF needs a number or a number_reason")
    return _finish(SDMF_TYPE, when + number)


def build_mdmf(callerid: CallerId) -> bytes:
    """MDMF / ETSI call set-up message with date, number (or reason) and name (or reason)."""
    body = b""
    if callerid.when is not None:
        body += bytes([PARAM_DATE, 8]) + _date_field(callerid.when)
    body += _field(PARAM_NUMBER, PARAM_NUMBER_ABSENT, callerid.number, callerid.number_reason)
    body += _field(PARAM_NAME, PARAM_NAME_ABSENT, callerid.name, callerid.name_reason)
    return _finish(MDMF_TYPE, body)


def _field(code: int, absent_code: int, value: str | None, reason: Reason | None) -> bytes:
    if value is not None and reason is not None:
        raise DspInputError(f"caller ID: both a value and a reason for parameter {code:#04x}")
    if value is not None:
        limit = MAX_NUMBER_CHARS if code == PARAM_NUMBER else MAX_NAME_CHARS
        data = _text(value, "number" if code == PARAM_NUMBER else "name", limit)
        return bytes([code, len(data)]) + data
    if reason is not None:
        return bytes([absent_code, 1]) + _ABSENCE_CODE[reason]
    return b""


def _valid_date(when: bytes) -> bool:
    """MMDDHHMM with month 1-12, day 1-31, hour 0-23, minute 0-59."""
    if len(when) != 8 or not when.isdigit():
        return False
    month, day, hour, minute = (int(when[i : i + 2]) for i in range(0, 8, 2))
    return 1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59


def _date_field(when: str) -> bytes:
    data = when.encode("ascii", "replace")
    if not _valid_date(data):
        raise DspInputError(f"caller ID time {when!r} is not MMDDHHMM")
    return data


def parse_message(message: bytes) -> CallerId:
    """Parse a whole message (type, length, body, checksum) into a `CallerId`.

    Raises `CallerIdFormatError` on a bad length or checksum, a malformed parameter or date,
    or a message type other than SDMF / MDMF. Unknown MDMF parameters are skipped.
    """
    raw = bytes(message)
    if len(raw) < 3 or len(raw) != raw[1] + 3:
        raise CallerIdFormatError("bad length", raw, f": {len(raw)} bytes")
    if sum(raw) & 0xFF:
        raise CallerIdFormatError("bad checksum", raw)
    body = raw[2:-1]
    if raw[0] == SDMF_TYPE:
        return _parse_sdmf(body, raw)
    if raw[0] == MDMF_TYPE:
        return _parse_mdmf(body, raw)
    raise CallerIdFormatError("unsupported message type", raw, f" {raw[0]:#04x}")


def _parse_sdmf(body: bytes, raw: bytes) -> CallerId:
    if len(body) < 8:
        raise CallerIdFormatError("bad length", raw, ": SDMF body shorter than MMDDHHMM")
    when, number = _parse_date(body[:8], raw), body[8:]
    if number in (b"P", b"O"):
        return CallerId(when=when, number_reason=_reason(number))
    return CallerId(number=_parse_number(number, raw) if number else None, when=when)


def _parse_mdmf(body: bytes, raw: bytes) -> CallerId:
    fields: dict[int, bytes] = {}
    pos = 0
    while pos < len(body):
        if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
            raise CallerIdFormatError("bad length", raw, f": parameter at {pos + 2} overruns")
        fields[body[pos]] = body[pos + 2 : pos + 2 + body[pos + 1]]
        pos += 2 + body[pos + 1]
    for code in (PARAM_NUMBER_ABSENT, PARAM_NAME_ABSENT):
        if code in fields and len(fields[code]) != 1:
            raise CallerIdFormatError("bad length", raw, f": absence reason {code:#04x}")
    date, number, name = fields.get(PARAM_DATE), fields.get(PARAM_NUMBER), fields.get(PARAM_NAME)
    number_absent, name_absent = fields.get(PARAM_NUMBER_ABSENT), fields.get(PARAM_NAME_ABSENT)
    return CallerId(
        number=None if number is None else _parse_number(number, raw),
        name=None if name is None else name.decode("latin-1"),
        when=None if date is None else _parse_date(date, raw),
        number_reason=None if number_absent is None else _reason(number_absent),
        name_reason=None if name_absent is None else _reason(name_absent),
    )


def _parse_date(value: bytes, raw: bytes) -> str:
    if len(value) != 8:
        raise CallerIdFormatError("bad length", raw, f": date of {len(value)} bytes")
    if not _valid_date(value):  # the mod-256 checksum passes 1 in 256 corrupt messages
        raise CallerIdFormatError("bad date", raw, f" {value!r}")
    return value.decode("ascii")


def _parse_number(value: bytes, raw: bytes) -> str:
    if not all(0x20 <= b <= 0x7E for b in value):
        raise CallerIdFormatError("bad number", raw, f" {value!r}")
    return value.decode("ascii")


def _reason(code: bytes) -> Reason:
    return "private" if code == b"P" else "unavailable"  # 'O' and any unknown code


def build_dtmf(callerid: CallerId, *, start: str = "A", end: str = "C") -> str:
    """DTMF caller ID string: `start` + number + `end` (start "A" or "D", end "C" or "#"), or
    an absence code (`B10C` / `B00C`, or `D1#` / `D3#`). Carries no name or date."""
    if start not in ("A", "D") or end not in ("C", "#") or (start, end) == ("D", "#"):
        raise DspInputError(f"DTMF caller ID: no variant starts {start!r} and ends {end!r}")
    if callerid.name is not None or callerid.when is not None or callerid.name_reason:
        raise DspInputError("DTMF caller ID carries a number (or its absence) only")
    number, reason = callerid.number, callerid.number_reason
    if number is not None:
        if not 0 < len(number) <= MAX_DTMF_NUMBER_DIGITS or not number.isdigit():
            raise DspInputError(f"DTMF caller ID number {number!r}: want 1-20 digits 0-9")
        return f"{start}{number}{end}"
    if reason is None:
        raise DspInputError("DTMF caller ID needs a number or a number_reason")
    if end == "C":
        return "B10C" if reason == "private" else "B00C"
    return "D1#" if reason == "private" else "D3#"


_DTMF_C_FIELDS = re.compile(r"(?:[ABD][0-9]*)+")
_DTMF_HASH_NUMBER = re.compile(r"A?([0-9]+)")


def parse_dtmf(digits: str) -> CallerId:
    """Parse a whole DTMF caller ID string (terminator included) into a `CallerId`.

    Raises `CallerIdFormatError` ("truncated burst" without a terminator, "bad format",
    "bad length") on anything that is not one of the variants in the module docstring.
    """
    raw = digits.encode("ascii", "replace")
    if not digits or digits[-1] not in "C#":
        raise CallerIdFormatError("truncated burst", raw, ": no terminator")
    body = digits[:-1]
    if digits[-1] == "#":
        if len(body) == 2 and body[0] == "D" and body[1] in "123":
            return CallerId(number_reason="private" if body[1] == "1" else "unavailable")
        m = _DTMF_HASH_NUMBER.fullmatch(body)
        if m is None:
            raise CallerIdFormatError("bad format", raw)
        return _dtmf_number(m.group(1), raw)
    if _DTMF_C_FIELDS.fullmatch(body) is None:
        raise CallerIdFormatError("bad format", raw)
    fields = re.findall(r"([ABD])([0-9]*)", body)
    kind, value = fields[0]
    if kind in "AD":  # A: the number; D first (Taiwan, Kuwait): the number too
        return _dtmf_number(value, raw)
    if len(value) != 2:
        raise CallerIdFormatError("bad length", raw, ": absence code")
    return CallerId(number_reason="private" if value == "10" else "unavailable")


def _dtmf_number(number: str, raw: bytes) -> CallerId:
    if not 0 < len(number) <= MAX_DTMF_NUMBER_DIGITS:
        raise CallerIdFormatError("bad length", raw, f": number of {len(number)} digits")
    return CallerId(number=number)
