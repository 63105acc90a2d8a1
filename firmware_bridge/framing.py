"""Frames of the tipring adapter protocol: COBS, the CRC, and the streaming deframer.

Owns the byte layer of `docs/adapter-protocol.md` §2: a frame is `major u8, type u8, body, CRC-32
u32 LE` (the CRC over everything before it), COBS-encoded and ended by one 0x00. `seal` builds
one, `unseal` opens one and `Deframer` cuts a byte stream into them. What the body means is
`firmware_bridge.protocol`'s business, which is the only user. Pure: no I/O, no trio.

The CRC is IEEE CRC-32 (`binascii.crc32`, stdlib, 0.12 us per frame). 32 bits, because CRC-16
lets one garbage frame in 2^16 through: once per ~22 minutes of garbage at 50 frames/s. IEEE
rather than CRC-32C, because it needs no wheel and many MCU CRC units compute it; it still has
Hamming distance >= 5 up to 371 bytes, which covers every AUDIO frame (spec §2.3).
"""

from __future__ import annotations

from binascii import crc32

from firmware_bridge.errors import ProtocolError

PROTOCOL_MAJOR = 1  # byte 0 of every frame; a peer with another major drops our frames
HEADER_BYTES = 2  # major, type
CRC_BYTES = 4
# Largest frame (header + body + CRC) either side must accept. The biggest message, STATS
# with 16 ports, is 471 bytes; an L16 AUDIO frame is 340.
MAX_FRAME_BYTES = 512
# COBS adds one code byte per started 254 bytes, so a 512-byte frame is at most 515 on the
# wire (plus its 0x00). The deframer never buffers more than this.
MAX_ENCODED_BYTES = MAX_FRAME_BYTES + (MAX_FRAME_BYTES + 253) // 254
MIN_FRAME_BYTES = HEADER_BYTES + 1 + CRC_BYTES  # the smallest body is one msgpack byte
_RUN = 254  # COBS: the longest run of non-zero bytes one code byte can announce


class FrameRejected(ProtocolError):
    """A frame that cannot be opened or decoded. `counter` names the `FrameDecoder` counter it
    is counted under: `cobs_errors`, `crc_errors`, `oversize`, `bad_version`, `unknown_type`
    or `malformed`; `version` is the major of a `bad_version` frame."""

    def __init__(self, counter: str, text: str, version: int | None = None) -> None:
        super().__init__(text)
        self.counter = counter
        self.version = version


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data` (Cheshire & Baker 1999): the result has no 0x00 byte and is at most
    `len(data) // 254 + 1` bytes longer. The 0x00 delimiter is not added."""
    out = bytearray()
    chunks = data.split(b"\0")
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        while len(chunk) >= _RUN:
            out.append(0xFF)
            out += chunk[:_RUN]
            chunk = chunk[_RUN:]
            # The data ends right after a full run: no empty block follows (the canonical
            # encoding of 254 non-zero bytes is FF + data, not FF + data + 01).
            if not chunk and index == last:
                return bytes(out)
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS frame (without its 0x00 delimiter). Raises `FrameRejected` (a
    `ProtocolError`) if `data` is empty, holds a 0x00, or a code byte runs past the end."""
    if not data:
        raise FrameRejected("cobs_errors", "COBS: empty frame")
    if 0 in data:
        raise FrameRejected("cobs_errors", f"COBS: 0x00 at offset {data.index(0)} inside a frame")
    out = bytearray()
    size = len(data)
    pos = 0
    while pos < size:
        code = data[pos]
        end = pos + code
        if end > size:
            raise FrameRejected(
                "cobs_errors", f"COBS: code {code} at offset {pos} runs past the end ({size})"
            )
        out += data[pos + 1 : end]
        pos = end
        if code != 0xFF and pos < size:
            out.append(0)
    return bytes(out)


def seal(type_code: int, body: bytes) -> bytes:
    """The wire bytes of one frame: `PROTOCOL_MAJOR, type_code, body, CRC-32 LE`, COBS-encoded,
    with the trailing 0x00. Raises `ProtocolError` past `MAX_FRAME_BYTES`."""
    inner = bytes((PROTOCOL_MAJOR, type_code)) + body
    if len(inner) + CRC_BYTES > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"frame type 0x{type_code:02x} is {len(inner) + CRC_BYTES} bytes, "
            f"over the {MAX_FRAME_BYTES}-byte cap"
        )
    return cobs_encode(inner + crc32(inner).to_bytes(CRC_BYTES, "little")) + b"\0"


def unseal(encoded: bytes) -> tuple[int, bytes]:
    """Open one frame (COBS bytes without the 0x00): check size, COBS, CRC and major version,
    and return `(type_code, body)`. Raises `FrameRejected` naming its counter. The CRC is
    checked before the version, so `bad_version` counts only real peers of another major."""
    if len(encoded) > MAX_ENCODED_BYTES:
        raise FrameRejected(
            "oversize", f"frame of {len(encoded)} COBS bytes, over the {MAX_ENCODED_BYTES} cap"
        )
    inner = cobs_decode(encoded)
    if len(inner) > MAX_FRAME_BYTES:
        raise FrameRejected(
            "oversize", f"frame of {len(inner)} bytes, over the {MAX_FRAME_BYTES}-byte cap"
        )
    if len(inner) < MIN_FRAME_BYTES:
        raise FrameRejected(
            "malformed", f"frame of {len(inner)} bytes, under the {MIN_FRAME_BYTES}-byte minimum"
        )
    got = int.from_bytes(inner[-CRC_BYTES:], "little")
    want = crc32(inner[:-CRC_BYTES])
    if got != want:
        raise FrameRejected("crc_errors", f"CRC-32 is {got:08x}, expected {want:08x}")
    if inner[0] != PROTOCOL_MAJOR:
        raise FrameRejected(
            "bad_version",
            f"protocol major {inner[0]}, this host speaks {PROTOCOL_MAJOR}",
            version=inner[0],
        )
    return inner[1], inner[HEADER_BYTES:-CRC_BYTES]


class Deframer:
    """Cuts a byte stream at each 0x00 into COBS frames (delimiter stripped). Empty frames
    (idle 0x00 fill) are skipped; a frame growing past `MAX_ENCODED_BYTES` is counted under
    `oversize` and skipped up to the next 0x00 without buffering it. Never raises."""

    def __init__(self) -> None:
        self._partial = bytearray()  # the frame still waiting for its 0x00
        self._skipping = False  # the current frame went over the cap: drop up to the next 0x00
        self.oversize = 0
        self.bytes_discarded = 0  # bytes of dropped frames, delimiters not counted

    def split(self, data: bytes) -> list[bytes]:
        """The complete frames `data` ends; keeps the unfinished tail for the next call."""
        parts = data.split(b"\0")
        frames: list[bytes] = []
        for part in parts[:-1]:
            frame = self._complete(part)
            if frame:
                frames.append(frame)
        self._keep(parts[-1])
        return frames

    def _complete(self, part: bytes) -> bytes:
        if self._skipping:
            self._skipping = False
            self.bytes_discarded += len(part)
            return b""
        size = len(self._partial) + len(part)
        if size > MAX_ENCODED_BYTES:
            self._drop_oversize(size)
            return b""
        if self._partial:
            part = bytes(self._partial) + part
            self._partial.clear()
        return part

    def _keep(self, tail: bytes) -> None:
        if self._skipping:
            self.bytes_discarded += len(tail)
            return
        size = len(self._partial) + len(tail)
        if size > MAX_ENCODED_BYTES:
            self._drop_oversize(size)
            self._skipping = True
            return
        self._partial += tail

    def _drop_oversize(self, size: int) -> None:
        self.oversize += 1
        self.bytes_discarded += size
        self._partial.clear()
