"""gateway.applog: syslog priorities, one prefixed line per message line and traceback line,
escaped control characters, the ring's bounds and format, secret redaction (args, msg,
exception, traceback; short values ignored), and setup_logging's idempotence and level check."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.applog import (
    NOISY_LOGGERS,
    RING_HANDLER_NAME,
    STREAM_HANDLER_NAME,
    JournalFormatter,
    LogRing,
    RedactSecrets,
    setup_logging,
)
from gateway.errors import ConfigError

NAME = "gateway.line"
SECRET = "sk-test-0123456789abcdef"


def make_record(
    msg: str, *args: object, level: int = logging.INFO, exc_info: Any = None
) -> logging.LogRecord:
    return logging.LogRecord(NAME, level, __file__, 1, msg, args or None, exc_info)


def raised(exc: Exception) -> Any:
    """The `exc_info` triple of `exc`, raised and caught (so it has a traceback)."""
    try:
        raise exc
    except Exception:
        return sys.exc_info()


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """The root logger, put back as it was (handlers, levels) after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_syslog_priority_prefix(level: int, priority: int) -> None:
    line = JournalFormatter().format(make_record("line %d: port lost", 1, level=level))
    assert line == f"<{priority}>gateway.line: line 1: port lost"


def test_multiline_message_prefixes_every_line() -> None:
    text = JournalFormatter().format(make_record("first\nsecond\n\nfourth", level=logging.WARNING))
    assert text.split("\n") == [
        "<4>gateway.line: first",
        "<4>gateway.line:   second",
        "<4>gateway.line:   ",
        "<4>gateway.line:   fourth",
    ]


def test_traceback_lines_all_carry_the_prefix() -> None:
    record = make_record("call failed", level=logging.ERROR, exc_info=raised(ValueError("boom")))
    lines = JournalFormatter().format(record).split("\n")
    assert lines[0] == "<3>gateway.line: call failed"
    assert lines[1] == "<3>gateway.line:   Traceback (most recent call last):"
    assert lines[-1] == "<3>gateway.line:   ValueError: boom"
    assert all(line.startswith("<3>gateway.line:   ") for line in lines[1:])


def test_control_characters_are_escaped() -> None:
    caller = "Eve\x1b[2J\x1b]0;pwned\x07\r\t\x9b31m\x7f"
    line = JournalFormatter().format(make_record("caller id %s", caller))
    assert line == r"<6>gateway.line: caller id Eve\x1b[2J\x1b]0;pwned\x07\x0d\x09\x9b31m\x7f"
    assert all(ord(c) >= 0x20 for c in line)


def test_timestamps_for_a_terminal() -> None:
    line = JournalFormatter(timestamps=True).format(make_record("hello"))
    assert re.fullmatch(r"<6>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} gateway\.line: hello", line)


def test_ring_keeps_last_lines_with_time_and_level() -> None:
    ring = LogRing(capacity=3)
    for n in range(5):
        ring.handle(make_record("line %d: port lost", n, level=logging.WARNING))
    lines = ring.lines()
    assert len(lines) == 3
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING gateway\.line: line 2: port lost", lines[0])
    assert [line.split(": ", 1)[1] for line in lines] == [
        "line 2: port lost",
        "line 3: port lost",
        "line 4: port lost",
    ]
    assert ring.lines(2) == lines[1:]
    assert ring.lines(10) == lines
    assert ring.lines(0) == []


def test_ring_splits_tracebacks_into_lines() -> None:
    ring = LogRing()
    ring.handle(make_record("oops\x1b", level=logging.ERROR, exc_info=raised(KeyError("k"))))
    lines = ring.lines()
    assert lines[0].endswith(r" ERROR gateway.line: oops\x1b")
    assert lines[-1].endswith(" ERROR gateway.line:   KeyError: 'k'")
    assert all("\n" not in line for line in lines)


def redacted(record: logging.LogRecord, *secrets: str) -> str:
    redact = RedactSecrets(secrets)
    assert redact.filter(record)
    return JournalFormatter().format(record)


def test_redacts_secret_in_args() -> None:
    record = make_record("sending key %s to %s", SECRET, "api.example")
    assert redacted(record, SECRET) == "<6>gateway.line: sending key <redacted> to api.example"
    assert record.args is None
    assert record.msg == "sending key <redacted> to api.example"


def test_redacts_secret_in_msg() -> None:
    record = make_record(f"Authorization: Bearer {SECRET}!")
    assert redacted(record, SECRET) == "<6>gateway.line: Authorization: Bearer <redacted>!"


def test_redacts_secret_in_exception() -> None:
    exc_info = raised(RuntimeError(f"401 for key {SECRET}"))
    record = make_record("connect failed", level=logging.ERROR, exc_info=exc_info)
    text = redacted(record, SECRET)
    assert SECRET not in text
    assert text.endswith("RuntimeError: 401 for key <redacted>")
    assert record.exc_info is None  # no later formatter can render the raw exception


def test_short_secrets_are_not_redacted() -> None:
    record = make_record("pin %s, port %d", "1234567", 1)
    assert redacted(record, "1234567", "port") == "<6>gateway.line: pin 1234567, port 1"


def test_longer_secret_containing_another_is_redacted_whole() -> None:
    record = make_record("tokens %s %s", "abcdefgh", "abcdefgh-and-more")
    assert redacted(record, "abcdefgh", "abcdefgh-and-more") == (
        "<6>gateway.line: tokens <redacted> <redacted>"
    )


def test_setup_logging_redacts_and_feeds_the_ring(clean_root: logging.Logger) -> None:
    out = io.StringIO()
    ring, redact = setup_logging("info", stream=out)
    redact.add(SECRET)
    log = logging.getLogger("gateway.test_applog")
    log.warning("key %s rejected", SECRET)
    log.debug("not shown at info")
    assert out.getvalue() == "<4>gateway.test_applog: key <redacted> rejected\n"  # no tty: no time
    [line] = ring.lines()
    assert line.endswith(" WARNING gateway.test_applog: key <redacted> rejected")
    for name in NOISY_LOGGERS:
        assert logging.getLogger(name).level == logging.WARNING


def test_setup_logging_twice_does_not_double_handlers(clean_root: logging.Logger) -> None:
    first = io.StringIO()
    setup_logging("debug", stream=first)
    out = io.StringIO()
    ring, _ = setup_logging("debug", stream=out, timestamps=False)
    names = [handler.get_name() for handler in clean_root.handlers]
    assert names.count(STREAM_HANDLER_NAME) == 1
    assert names.count(RING_HANDLER_NAME) == 1
    logging.getLogger("gateway.test_applog").debug("once")
    assert out.getvalue() == "<7>gateway.test_applog: once\n"
    assert first.getvalue() == ""
    assert len(ring.lines()) == 1
    assert clean_root.level == logging.DEBUG


def test_bad_level_names_the_key(clean_root: logging.Logger) -> None:
    before = list(clean_root.handlers)
    with pytest.raises(ConfigError, match=r"log\.level 'verbose'.*debug, info, warning, error"):
        setup_logging("verbose", stream=io.StringIO())
    assert clean_root.handlers == before
