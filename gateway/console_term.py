"""The admin console's terminal line discipline: `LineEditor` turns the bytes a terminal program
(picocom, minicom, screen, a raw serial line) sends into edited lines, and tells what to echo.

Pure: bytes in, (echo bytes, at most one event) out; no I/O, no trio, no clock. `gateway.console`
owns one per session, writes the echo to the port and acts on the events. What it understands:

- Enter: CR, LF or CRLF (and telnet's CR NUL): the LF or NUL right after a CR is swallowed.
- Backspace (BS 0x08) and DEL (0x7f): erase before the cursor; Ctrl-D or `CSI 3 ~`: under it
  (Ctrl-D on an empty line: `EndOfInput`); Ctrl-U: erase to the start, Ctrl-K: to the end,
  Ctrl-W: the word before the cursor; Ctrl-C: `Interrupted`; Ctrl-L: redraw the line.
- Cursor: left/right (`CSI D`/`CSI C`, `SS3 D`/`SS3 C`, Ctrl-B/Ctrl-F), Home/End (`CSI H`/`F`,
  `CSI 1 ~`/`4 ~`, `7 ~`/`8 ~`, `SS3 H`/`F`, Ctrl-A/Ctrl-E); history: up/down (`CSI A`/`B`,
  `SS3 A`/`B`, Ctrl-P/Ctrl-N); Tab completes a command name through the `completer` given.
- Text: UTF-8; a malformed sequence, a C0/C1 control we do not use, an unknown escape sequence
  or a line over `MAX_LINE_CHARS` (bell) is dropped, never an error.

The cursor moves by BS and by re-sending characters, and a shortened line is blanked with
spaces: no ANSI needed for editing, so a dumb terminal works too. A line longer than the
terminal is wide wraps, and BS cannot move back across the wrap (a VT100 limit), so editing
far left of a wrapped line goes wrong on screen (never in the line itself).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_LINE_CHARS = 240  # three 80-column rows: the longest `config set` fits, a paste flood does not
HISTORY_LINES = 50
MAX_PENDING_BYTES = 4096  # type-ahead held while no line is being read; the rest is dropped
MAX_ESCAPE_BYTES = 16  # the longest sequence we know is 4 bytes; garbage past this is dropped
BELL = b"\x07"
NEWLINE = b"\r\n"

Completer = Callable[[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class LineEntered:
    """Enter was pressed: `text` is the line."""

    text: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Ctrl-C: the line was abandoned."""


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """Ctrl-D on an empty line."""


EditorEvent = LineEntered | Interrupted | EndOfInput


def char_cols(ch: str) -> int:
    """Terminal columns of one character: 0 combining, 2 East Asian wide, else 1."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_cols(chars: Sequence[str]) -> int:
    return sum(char_cols(c) for c in chars)


class LineEditor:
    """Edits one line at a time. `start(prompt)` begins a line and returns the prompt to send;
    `feed(data)` returns what to echo and the event that ended the line, if one did. Bytes
    past that event wait for the next `start`. `secret=True` echoes nothing and keeps no
    history (passwords)."""

    def __init__(self, completer: Completer | None = None) -> None:
        self._completer = completer
        self._history: list[str] = []
        self._pending = bytearray()
        self._reading = False
        self._prompt = ""
        self._secret = False
        self._chars: list[str] = []
        self._cursor = 0
        self._hist_pos = 0
        self._draft: list[str] = []
        self._after_cr = False
        self._escape: bytearray | None = None
        self._utf8 = bytearray()
        self._utf8_len = 0

    @property
    def reading(self) -> bool:
        """A line is being read (between `start` and its event)."""
        return self._reading

    @property
    def has_pending(self) -> bool:
        """Bytes arrived that no line has read yet (type-ahead)."""
        return bool(self._pending)

    @property
    def history(self) -> list[str]:
        """The remembered lines, oldest first (a copy)."""
        return list(self._history)

    def add_history(self, line: str) -> None:
        """Remember `line` for up/down (not blank lines, nor a repeat of the last one)."""
        if line.strip() and (not self._history or self._history[-1] != line):
            self._history.append(line)
            del self._history[:-HISTORY_LINES]

    def start(self, prompt: str, *, secret: bool = False) -> bytes:
        """Begin a new line after `prompt`; returns the bytes to send (the prompt)."""
        self._reading, self._prompt, self._secret = True, prompt, secret
        self._chars, self._cursor = [], 0
        self._hist_pos, self._draft = len(self._history), []
        return prompt.encode()

    def discard_pending(self) -> None:
        """Forget type-ahead (during a login backoff, keys typed then do not count)."""
        self._pending.clear()
        self._escape, self._utf8 = None, bytearray()

    def feed(self, data: bytes) -> tuple[bytes, EditorEvent | None]:
        """Take `data` (may be empty: go on with type-ahead); returns the echo and the event
        that ended the line (None: the line goes on, or no line is being read)."""
        room = MAX_PENDING_BYTES - len(self._pending)
        self._pending += data[: max(room, 0)]
        echo = bytearray()
        while self._reading and self._pending:
            byte = self._pending[0]
            del self._pending[0]
            out, event = self._byte(byte)
            if not self._secret or event is not None:
                echo += out
            if event is not None:
                self._reading = False
                return bytes(echo), event
        return bytes(echo), None

    # --- bytes -> keys ----------------------------------------------------------------------

    def _byte(self, byte: int) -> tuple[bytes, EditorEvent | None]:
        after_cr, self._after_cr = self._after_cr, False
        if self._escape is not None:
            return self._escape_byte(byte), None
        if self._utf8_len:
            return self._utf8_byte(byte), None
        if after_cr and byte in (0x0A, 0x00):
            return b"", None  # the LF of CRLF, or telnet's CR NUL: Enter was the CR
        if byte == 0x0D:
            self._after_cr = True
            return self._enter()
        if byte < 0x20 or byte == 0x7F:
            return self._control(byte)
        if byte < 0x80:
            return self._insert(chr(byte)), None
        return self._utf8_start(byte), None

    def _utf8_start(self, byte: int) -> bytes:
        if 0xC2 <= byte <= 0xDF:
            self._utf8_len = 2
        elif 0xE0 <= byte <= 0xEF:
            self._utf8_len = 3
        elif 0xF0 <= byte <= 0xF4:
            self._utf8_len = 4
        else:
            return b""  # a stray continuation byte or an invalid lead: dropped
        self._utf8 = bytearray([byte])
        return b""

    def _utf8_byte(self, byte: int) -> bytes:
        if not 0x80 <= byte <= 0xBF:
            self._utf8_len = 0  # a broken sequence: drop it, and read this byte afresh
            self._pending.insert(0, byte)
            return b""
        self._utf8.append(byte)
        if len(self._utf8) < self._utf8_len:
            return b""
        self._utf8_len = 0
        try:
            text = self._utf8.decode("utf-8")
        except UnicodeDecodeError:
            return b""  # overlong forms, surrogates, past U+10FFFF
        return self._insert(text) if text.isprintable() else b""

    def _escape_byte(self, byte: int) -> bytes:
        assert self._escape is not None
        self._escape.append(byte)
        seq = bytes(self._escape)
        if len(seq) == 2:
            if byte in (0x5B, 0x4F):  # ESC [ (CSI) or ESC O (SS3): a sequence follows
                return b""
            # ESC then an ordinary key (Alt-x, or a lone Esc): drop the ESC, keep the key.
            self._escape = None
            self._pending.insert(0, byte)
            return b""
        if seq[1] == 0x4F or 0x40 <= byte <= 0x7E:  # SS3 is one byte long; CSI ends at a final
            self._escape = None
            return self._sequence(seq)
        if not 0x20 <= byte <= 0x3F or len(seq) > MAX_ESCAPE_BYTES:
            self._escape = None  # not a CSI parameter or intermediate byte: garbage
        return b""

    def _sequence(self, seq: bytes) -> bytes:
        key = seq[2:]
        if key == b"A":
            return self._history_step(-1)
        if key == b"B":
            return self._history_step(+1)
        if key == b"C":
            return self._move(min(self._cursor + 1, len(self._chars)))
        if key == b"D":
            return self._move(max(self._cursor - 1, 0))
        if key in (b"H", b"1~", b"7~"):
            return self._move(0)
        if key in (b"F", b"4~", b"8~"):
            return self._move(len(self._chars))
        if key == b"3~" and self._cursor < len(self._chars):
            return self._splice(self._cursor, self._cursor + 1, "", self._cursor)
        return b""  # function keys, mouse reports, cursor position reports: ignored

    def _control(self, byte: int) -> tuple[bytes, EditorEvent | None]:
        n = len(self._chars)
        match byte:
            case 0x0A:
                return self._enter()
            case 0x03:
                return b"^C" + NEWLINE, Interrupted()
            case 0x04 if n == 0:
                return NEWLINE, EndOfInput()
            case 0x04 if self._cursor < n:
                return self._splice(self._cursor, self._cursor + 1, "", self._cursor), None
            case 0x08 | 0x7F if self._cursor > 0:
                return self._splice(self._cursor - 1, self._cursor, "", self._cursor - 1), None
            case 0x15:
                return self._splice(0, self._cursor, "", 0), None
            case 0x0B:
                return self._splice(self._cursor, n, "", self._cursor), None
            case 0x17:
                start = self._word_start()
                return self._splice(start, self._cursor, "", start), None
            case 0x01:
                return self._move(0), None
            case 0x05:
                return self._move(n), None
            case 0x02:
                return self._move(max(self._cursor - 1, 0)), None
            case 0x06:
                return self._move(min(self._cursor + 1, n)), None
            case 0x10:
                return self._history_step(-1), None
            case 0x0E:
                return self._history_step(+1), None
            case 0x0C:
                return self._redraw(), None
            case 0x09:
                return self._complete(), None
            case 0x1B:
                self._escape = bytearray([byte])
        return b"", None

    # --- editing ----------------------------------------------------------------------------

    def _enter(self) -> tuple[bytes, EditorEvent]:
        return NEWLINE, LineEntered("".join(self._chars))

    def _insert(self, text: str) -> bytes:
        if len(self._chars) + len(text) > MAX_LINE_CHARS:
            return BELL
        return self._splice(self._cursor, self._cursor, text, self._cursor + len(text))

    def _word_start(self) -> int:
        i = self._cursor
        while i > 0 and self._chars[i - 1] == " ":
            i -= 1
        while i > 0 and self._chars[i - 1] != " ":
            i -= 1
        return i

    def _splice(self, start: int, end: int, text: str, cursor: int) -> bytes:
        """Replace `chars[start:end]` by `text`, leave the cursor at `cursor`; returns the
        bytes that show it: move to `start`, rewrite the tail, blank what it no longer
        covers, move back."""
        out = bytearray(self._move(start))
        old_cols = text_cols(self._chars[start:])
        self._chars[start:end] = list(text)
        tail = self._chars[start:]
        pad = max(old_cols - text_cols(tail), 0)
        out += "".join(tail).encode() + b" " * pad + b"\b" * pad
        self._cursor = len(self._chars)
        out += self._move(cursor)
        return bytes(out)

    def _move(self, to: int) -> bytes:
        if to < self._cursor:
            out = b"\b" * text_cols(self._chars[to : self._cursor])
        else:
            out = "".join(self._chars[self._cursor : to]).encode()
        self._cursor = to
        return out

    def _history_step(self, step: int) -> bytes:
        pos = self._hist_pos + step
        if self._secret or not 0 <= pos <= len(self._history):
            return b""
        if self._hist_pos == len(self._history):
            self._draft = list(self._chars)  # what was typed before going up: down returns it
        self._hist_pos = pos
        line = self._draft if pos == len(self._history) else list(self._history[pos])
        return self._splice(0, len(self._chars), "".join(line), len(line))

    def _redraw(self) -> bytes:
        back = b"\b" * text_cols(self._chars[self._cursor :])
        return NEWLINE + self._prompt.encode() + "".join(self._chars).encode() + back

    def _complete(self) -> bytes:
        text = "".join(self._chars)
        if self._completer is None or self._secret or self._cursor != len(self._chars):
            return BELL
        if " " in text:
            return BELL  # only the command name completes
        names = sorted(set(self._completer(text)))
        if not names:
            return BELL
        if len(names) == 1:
            return self._insert(names[0][len(text) :] + " ")
        common = names[0]
        while not all(name.startswith(common) for name in names):
            common = common[:-1]
        if len(common) > len(text):
            return self._insert(common[len(text) :])
        return NEWLINE + "  ".join(names).encode() + self._redraw()
