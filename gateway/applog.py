"""Logging for the appliance: journald-friendly lines, a ring of recent lines, secret redaction.

`setup_logging` (called once by `gateway.cli`, again harmlessly) installs on the root logger a
stream handler with `JournalFormatter` (stdout goes to journald under systemd) and a `LogRing`
that the admin console's `log [n]` command reads. Both pass every record through one
`RedactSecrets` filter, to which the app adds each credential it loads.

Every output line is one journald entry: a record with several lines (a traceback, a message
with newlines) gives several entries, each with the record's priority and logger name, the
continuation lines indented by two spaces. Control characters are escaped (`\\x1b`): text from
the phone line (a caller-ID name) must not be able to drive the terminal that reads the log.
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import IO

from gateway.errors import ConfigError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip
RING_SIZE = 500  # lines: a few minutes of a busy gateway at INFO, ~100 kB
MIN_SECRET_CHARS = 8  # shorter "secrets" (a PIN, "test") match everywhere and hide real text
REDACTED = "<redacted>"
NOISY_LOGGERS = ("numba", "trio-websocket", "httpx", "httpcore")  # DEBUG/INFO per request
STREAM_HANDLER_NAME = "tipring.stream"  # how setup_logging finds the handlers it installed
RING_HANDLER_NAME = "tipring.ring"
CONTINUATION = "  "

# C0 controls but the newline we split on, DEL, and C1 (0x9b is a one-byte CSI to some terminals).
_CONTROLS = [c for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x0A]
_ESCAPES = str.maketrans({c: f"\\x{c:02x}" for c in _CONTROLS})
_PLAIN = logging.Formatter()  # the standard traceback text, for RedactSecrets


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) of a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class _LinesFormatter(logging.Formatter):
    """Formats a record as lines with a per-record prefix; subclasses give the prefix."""

    def prefix(self, record: logging.LogRecord) -> str:
        raise NotImplementedError

    def body_lines(self, record: logging.LogRecord) -> list[str]:
        """The message, the traceback and the stack, split into lines, controls escaped."""
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return [line.translate(_ESCAPES) for line in text.split("\n")]

    def format(self, record: logging.LogRecord) -> str:
        prefix = self.prefix(record)
        first, *rest = self.body_lines(record)
        return "\n".join([prefix + first, *(prefix + CONTINUATION + line for line in rest)])


class JournalFormatter(_LinesFormatter):
    """`<N>logger.name: message` per line, N the syslog priority (journald's SyslogLevelPrefix
    reads and strips it). `timestamps` adds local time (for a terminal; journald has its own)."""

    def __init__(self, *, timestamps: bool = False) -> None:
        super().__init__()
        self.timestamps = timestamps

    def prefix(self, record: logging.LogRecord) -> str:
        if not self.timestamps:
            return f"<{syslog_priority(record.levelno)}>{record.name}: "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        return f"<{syslog_priority(record.levelno)}>{when}.{millis:03d} {record.name}: "


class _RingFormatter(_LinesFormatter):
    """`09:15:02 WARNING gateway.line: message` per line, local time."""

    def prefix(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{when} {record.levelname} {record.name}: "


class LogRing(logging.Handler):
    """The last `capacity` log lines (oldest dropped), with time and level, for the console."""

    def __init__(self, capacity: int = RING_SIZE) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(_RingFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # logging's contract: a bad record is reported, never raised
            self.handleError(record)
            return
        self._lines.extend(text.split("\n"))  # escaped: the only newlines are ours

    def lines(self, limit: int | None = None) -> list[str]:
        """The last `limit` lines (all without a limit), oldest first."""
        self.acquire()  # emit runs under this lock: the deque holds still while copied
        try:
            kept = list(self._lines)
        finally:
            self.release()
        if limit is None:
            return kept
        return kept[-limit:] if limit > 0 else []


class RedactSecrets(logging.Filter):
    """Replaces each known secret in a record's message, traceback and stack by `<redacted>`.

    Values shorter than `MIN_SECRET_CHARS` are ignored: they would match ordinary words and
    numbers and hide them, and a credential that short is not worth the false hits.
    The message is formatted here (`record.msg` becomes the text, `record.args` None), and the
    traceback is formatted once into `record.exc_text` and `record.exc_info` dropped, so no
    later formatter can render the raw exception again.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, value: str) -> None:
        """Redacts `value` from now on (ignored if shorter than `MIN_SECRET_CHARS`)."""
        if len(value) < MIN_SECRET_CHARS or value in self._secrets:
            return
        self._secrets.add(value)
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """`text` with every known secret replaced."""
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad args: leave the record to the handler's error report
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _parse_level(level: str) -> int:
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ConfigError(f"log.level {level!r} is not one of {', '.join(LEVELS)}") from None


def _remove_ours(root: logging.Logger) -> None:
    """Removes the handlers an earlier `setup_logging` installed (not other people's)."""
    for handler in list(root.handlers):
        if handler.get_name() in (STREAM_HANDLER_NAME, RING_HANDLER_NAME):
            root.removeHandler(handler)
            handler.close()


def setup_logging(
    level: str = "info",
    *,
    stream: IO[str] | None = None,
    timestamps: bool | None = None,
    ring_size: int = RING_SIZE,
) -> tuple[LogRing, RedactSecrets]:
    """Configures the root logger: `JournalFormatter` lines on `stream` (default: sys.stdout at
    call time; `timestamps` default: whether it is a terminal), a `LogRing` of `ring_size`
    lines, and one `RedactSecrets` on both handlers. Replaces what an earlier call installed.
    Raises `ConfigError` (naming `log.level`) for a level not in `LEVELS`."""
    levelno = _parse_level(level)
    out = sys.stdout if stream is None else stream
    if timestamps is None:
        isatty = getattr(out, "isatty", None)
        timestamps = bool(isatty()) if callable(isatty) else False
    root = logging.getLogger()
    _remove_ours(root)
    redact = RedactSecrets()
    stream_handler = logging.StreamHandler(out)
    stream_handler.set_name(STREAM_HANDLER_NAME)
    stream_handler.setFormatter(JournalFormatter(timestamps=timestamps))
    ring = LogRing(ring_size)
    ring.set_name(RING_HANDLER_NAME)
    for handler in (stream_handler, ring):
        handler.addFilter(redact)  # handler-level: applies to records from every logger
        root.addHandler(handler)
    root.setLevel(levelno)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, levelno))
    return ring, redact
