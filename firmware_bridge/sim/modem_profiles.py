"""The chipsets the voice-modem simulator can be, as data: `ModemProfile` and `PROFILES`.

`firmware_bridge.sim.modem.ModemSimulator` and its AT interpreter (`sim.modem_at`) read every
vendor difference from here; a test that needs a quirk makes one with `dataclasses.replace`.
Sources are in /work/shared/research/voice-modem.md and `docs/voice-modem.md`:

- CX93001: ATI0/ATI3, `+FCLASS=?`, `+VSM=?` codes and names (131 mu-law, 132 A-law, 130
  unsigned PCM, 133 14-bit) as measured on hardware (retrac0/modec); `+VTR=?` ERROR; +VGR
  only 0 (AGC); `NMBR = x` with spaces; `/ d ~` DTMF framing; +VSD accepted, not applied
  (callattendant #116); forgets +VCID after a call (home-assistant #57765); 30.4 kB/s total
  throughput (modec).
- CX93010: as CX93001 from the UCMxx data sheet; its ATI3/+GMM strings are a guess.
- USR5637: ATI0 `5601`, ATI3 from the user guide, `+VSM` numbering (128 8-bit, 129 16-bit
  default, 130 A-law, 131 mu-law, 132 ADPCM), `NMBR=x` without spaces, +VGR 0-255. Its +VTR
  is documented but nobody has shown it working: this profile answers ERROR (the
  conservative guess), which makes it the half-duplex profile. DTMF framing and the
  throughput cap are not documented: repeated digit codes without framing, cap as Conexant.
- The `+VLS=?` event bitmaps are illustrative, not read from a device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

__all__ = ["CX93001", "CX93010", "PROFILES", "USR5637", "Encoding", "ModemProfile", "SimFormat"]

Encoding = Literal["ulaw", "alaw", "s8", "u8", "s16le", "s14le", "adpcm"]


@dataclass(frozen=True, slots=True)
class SimFormat:
    """One `+VSM` format: the vendor's code, the name it prints, the sample encoding (8 kHz).
    "adpcm" is listed but not modelled (selecting it gives ERROR)."""

    code: int
    name: str
    encoding: Encoding

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding in ("s16le", "s14le") else 1

    @property
    def bits(self) -> int:
        return {"s16le": 16, "s14le": 16, "adpcm": 4}.get(self.encoding, 8)


@dataclass(frozen=True, slots=True)
class ModemProfile:
    """Everything that differs between the simulated chipsets (module doc)."""

    name: str
    ati0: str
    ati3: str
    manufacturer: str  # +GMI
    model: str  # +GMM
    revision: str  # +GMR
    formats: tuple[SimFormat, ...]
    default_format: int  # +VSM after a reset
    vls_test: tuple[str, ...]  # the +VLS=? lines
    full_duplex: bool  # +VTR off-hook gives CONNECT (else ERROR)
    cid_separator: str  # between a caller ID tag and its value: " = " or "="
    dtmf_framing: bool  # "/" digit... "~" around a keypress (else bare repeated digits)
    forgets_vcid_after_call: bool  # +VCID back to 0 when a call ends
    vsd_applied: bool  # +VSD silence detection works (Conexant: accepted, inert)
    vgr_max: int  # +VGR accepts 0..vgr_max (0: AGC only)
    action_test_forms: bool  # +VTR=? / +VRX=? / +VTX=? answer (CX93001: ERROR)
    vendor_commands: bool  # -SCID, -STE (Conexant)
    fclasses: str = "0,1,1.0,2,8"
    vls_reply: str = "OK"  # final result of +VLS=1 (some firmwares: VCON)
    dte_exit_codes: str = "^!\x03"  # DLE codes from the host that end a stream
    throughput_bytes_s: int = 30400  # both directions together (CX93001, measured: modec)
    tx_fifo_bytes: int = 4000  # the transmit FIFO: 0.5 s of 8-bit audio (size unknown)

    def __post_init__(self) -> None:
        default = self.format(self.default_format)
        if default is None or default.encoding == "adpcm":  # the chip could not stream it
            codes = [f.code for f in self.formats if f.encoding != "adpcm"]
            raise ValueError(
                f"modem profile {self.name}: default_format {self.default_format} is not "
                f"one of its modelled +VSM formats {codes}"
            )

    def format(self, code: int) -> SimFormat | None:
        """The format numbered `code`, if listed."""
        return next((f for f in self.formats if f.code == code), None)


_CONEXANT_FORMATS = (
    SimFormat(0, "SIGNED PCM", "s8"),
    SimFormat(1, "UNSIGNED PCM", "u8"),
    SimFormat(129, "IMA ADPCM", "adpcm"),
    SimFormat(130, "UNSIGNED PCM", "u8"),
    SimFormat(131, "ULAW", "ulaw"),
    SimFormat(132, "ALAW", "alaw"),
    SimFormat(133, "14 BIT PCM", "s14le"),
)
_CONEXANT_VLS = (
    '0,"",B0000000,B0000000,B0000000',
    '1,"T",0CE80000,0CE80000,0CE80000',
)

CX93001 = ModemProfile(
    name="cx93001",
    ati0="56000",
    ati3="CX93001-EIS_V0.2013-V92",
    manufacturer="CONEXANT",
    model="CX93001-EIS_V0.2013-V92",
    revision="V0.2013",
    formats=_CONEXANT_FORMATS,
    default_format=1,
    vls_test=_CONEXANT_VLS,
    full_duplex=True,
    cid_separator=" = ",
    dtmf_framing=True,
    forgets_vcid_after_call=True,
    vsd_applied=False,
    vgr_max=0,
    action_test_forms=False,
    vendor_commands=True,
)

# The CX93010 differs from the CX93001 in its identity and in answering the "=?" test forms
# of action commands.
CX93010 = dataclasses.replace(
    CX93001,
    name="cx93010",
    ati3="CX93010-2x UCMxx V2.10",
    model="CX93010",
    revision="V2.10",
    action_test_forms=True,
)

USR5637 = ModemProfile(
    name="usr5637",
    ati0="5601",
    ati3="U.S. Robotics 56K FAX USB V1.2.23",
    manufacturer="U.S. Robotics",
    model="USR5637",
    revision="1.2.23",
    formats=(
        SimFormat(128, "8-bit linear", "s8"),
        SimFormat(129, "16-bit linear", "s16le"),
        SimFormat(130, "A-Law", "alaw"),
        SimFormat(131, "Mu-Law", "ulaw"),
        SimFormat(132, "IMA ADPCM", "adpcm"),
    ),
    default_format=129,
    vls_test=('0,"",00000000,00000000,00000000', '1,"T",0CE00000,0CE00000,0CE00000'),
    full_duplex=False,
    cid_separator="=",
    dtmf_framing=False,
    forgets_vcid_after_call=False,
    vsd_applied=True,
    vgr_max=255,
    action_test_forms=True,
    vendor_commands=False,
    dte_exit_codes="!\x03",  # its DTE code table lists no ^
)

PROFILES = {p.name: p for p in (CX93001, CX93010, USR5637)}
