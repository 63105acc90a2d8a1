"""Who the voice modem is: `probe` runs the identify sequence on an `AtChannel` and returns a
`ModemIdentity`; the parsers behind it (`parse_vsm_formats`, `find_format`, `guess_chipset`)
are pure. Used by `firmware_bridge.modem.VoiceModem` after every (re)connect.

The sequence (research note voice-modem.md §1.1, §4): resync (`<DLE><ETX>`, `<DLE>^`,
`<DLE>!`, CR, drain), `AT` up to three times, `AT&F` (else `ATZ`), `ATE0V1Q0`, `AT&D2`,
`ATI0`, `ATI3`, `+GMI/+GMM/+GMR`, `AT+FCLASS=?` (must list 8), then in class 8 `AT+VSM=?`
(formats by quoted name: vendors number them differently) and `AT+VLS=?`, back to class 0
and `AT+VCID=1`. Echo may be on after the reset: `AtChannel` drops echoed lines.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum

import trio

from firmware_bridge.errors import CommandFailed, LinkBroken, PortUnsupported
from firmware_bridge.modem_at import AtChannel, AtReply
from firmware_bridge.port import Codec

log = logging.getLogger(__name__)

# V.250 commands answer in milliseconds; AT&F/ATZ restart the firmware: 1 s covers it with
# room for a slow USB host.
AT_REPLY_S = 1.0
# A modem left streaming stops within ~1 s of <DLE>^ (it drains its TX buffer first).
RESYNC_S = 2.0
WAKE_TRIES = 3  # `AT` x3: the first may only flush a stale partial command
_VSM_LINE = re.compile(r'^\s*(\d+)\s*,\s*"([^"]*)"\s*(?:,\s*(\d+))?')


class Chipset(StrEnum):
    """The chipset guess: a part seen in ATI3/+GMM, else the vendor family from ATI0."""

    CX93001 = "cx93001"
    CX93010 = "cx93010"
    CONEXANT = "conexant"  # ATI0 says 56000, no part number seen
    USR5637 = "usr5637"
    USR = "usr"  # ATI0 says 5601, no model seen
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class VoiceFormat:
    """One `+VSM=?` entry: the vendor's code, its quoted name, bits per sample if given."""

    code: int
    name: str
    bits: int | None


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    """What `probe` learnt. `voice_format` is the one the driver streams (`codec`)."""

    manufacturer: str
    model: str
    firmware: str
    chipset: Chipset
    ati0: str
    ati3: str
    fclasses: tuple[str, ...]
    formats: tuple[VoiceFormat, ...]
    voice_format: VoiceFormat
    codec: Codec
    vls_caps: tuple[str, ...]


def parse_vsm_formats(lines: tuple[str, ...] | list[str]) -> tuple[VoiceFormat, ...]:
    """The `+VSM=?` lines `<code>,"<name>",<bits>,...` as formats; other lines are skipped."""
    formats = []
    for line in lines:
        m = _VSM_LINE.match(line)
        if m is not None:
            bits = int(m.group(3)) if m.group(3) else None
            formats.append(VoiceFormat(int(m.group(1)), m.group(2).strip(), bits))
    return tuple(formats)


def _squash(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", name.replace("\u00b5", "U").upper())


def find_format(formats: tuple[VoiceFormat, ...], codec: Codec) -> VoiceFormat | None:
    """The format whose name says `codec` (ULAW / Mu-Law / u-law; ALAW / A-Law), if any."""
    for fmt in formats:
        name = _squash(fmt.name)
        if codec is Codec.ULAW and "ULAW" in name:
            return fmt
        if codec is Codec.ALAW and "ALAW" in name and "ULAW" not in name:
            return fmt
    return None


def guess_chipset(ati0: str, *texts: str) -> Chipset:
    """A part number in any of `texts` (ATI3, +GMM, ...), else the family from ATI0."""
    text = " ".join(texts).upper()
    for part in (Chipset.CX93001, Chipset.CX93010):
        if part.value.upper() in text:
            return part
    if "ROBOTICS" in text or "USR" in text or "5637" in text:
        return Chipset.USR5637
    return {"56000": Chipset.CONEXANT, "5601": Chipset.USR}.get(ati0.strip(), Chipset.UNKNOWN)


async def ask(chan: AtChannel, command: str) -> AtReply:
    """`command` with the `AT_REPLY_S` deadline; no reply means the modem is gone."""
    try:
        with trio.fail_after(AT_REPLY_S):
            return await chan.command(command)
    except trio.TooSlowError as exc:
        raise LinkBroken(chan.device, f"no reply to {command} in {AT_REPLY_S} s") from exc


async def ask_ok(chan: AtChannel, command: str, port: int) -> AtReply:
    """`ask`, and `CommandFailed` unless the modem said OK."""
    reply = await ask(chan, command)
    if not reply.ok:
        raise CommandFailed(port, command, f"modem {chan.device} answered {reply.result}")
    return reply


async def probe(chan: AtChannel, port: int) -> ModemIdentity:
    """Identify and set up the modem on `chan` (its reader running); leaves it idle in
    +FCLASS=0 with caller ID reporting on. `PortUnsupported` if it is no usable voice modem."""
    try:
        with trio.fail_after(RESYNC_S):
            await chan.resync()
    except trio.TooSlowError as exc:
        raise LinkBroken(chan.device, "the modem does not stop sending") from exc
    await _wake(chan)
    if not (await ask(chan, "AT&F")).ok:
        await ask_ok(chan, "ATZ", port)
    await ask_ok(chan, "ATE0V1Q0", port)
    await ask(chan, "AT&D2")  # best effort: a DTR drop then hangs up (CX930xx Table 5-4)
    info = [_text(await ask(chan, c)) for c in ("ATI0", "ATI3", "AT+GMI", "AT+GMM", "AT+GMR")]
    fclasses = _fclasses(await ask_ok(chan, "AT+FCLASS=?", port), port)
    await ask_ok(chan, "AT+FCLASS=8", port)
    formats = parse_vsm_formats((await ask_ok(chan, "AT+VSM=?", port)).lines)
    vls = await ask(chan, "AT+VLS=?")
    await ask_ok(chan, "AT+FCLASS=0", port)
    await ask_ok(chan, "AT+VCID=1", port)
    codec, fmt = _choose_format(formats, port)
    ati0, ati3, gmi, gmm, gmr = info
    return ModemIdentity(
        manufacturer=gmi or "unknown", model=gmm or ati3, firmware=gmr or ati3,
        chipset=guess_chipset(ati0, ati3, gmi, gmm), ati0=ati0, ati3=ati3, fclasses=fclasses,
        formats=formats, voice_format=fmt, codec=codec, vls_caps=vls.lines if vls.ok else (),
    )  # fmt: skip


async def _wake(chan: AtChannel) -> None:
    for _ in range(WAKE_TRIES):
        try:
            with trio.fail_after(AT_REPLY_S):
                if (await chan.command("AT")).ok:
                    return
        except trio.TooSlowError:
            log.debug("modem %s: no answer to AT yet", chan.device)
    raise LinkBroken(chan.device, f"no OK to AT in {WAKE_TRIES} tries")


def _text(reply: AtReply) -> str:
    return " ".join(reply.lines) if reply.ok else ""


def _fclasses(reply: AtReply, port: int) -> tuple[str, ...]:
    classes = tuple(c.strip() for c in ",".join(reply.lines).split(",") if c.strip())
    if "8" not in classes and "8.0" not in classes:
        raise PortUnsupported(port, "AT+FCLASS=?", f"no voice class 8 in {classes}")
    return classes


def _choose_format(formats: tuple[VoiceFormat, ...], port: int) -> tuple[Codec, VoiceFormat]:
    for codec in (Codec.ULAW, Codec.ALAW):  # mu-law is the agent's format: no transcoding
        fmt = find_format(formats, codec)
        if fmt is not None:
            return codec, fmt
    names = ", ".join(f"{f.code} {f.name!r}" for f in formats) or "none"
    raise PortUnsupported(port, "AT+VSM=?", f"no mu-law or A-law voice format ({names})")
