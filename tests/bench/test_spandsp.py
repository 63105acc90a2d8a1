"""The spandsp comparison: the ctypes binding works on clean signals, and our detectors meet
every bound of the quick battery. spandsp's own column is printed, never asserted.

libspandsp2 is a test dependency (`make test` installs it): without it these tests FAIL.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest

from tests.bench import spandsp
from tests.bench.dsp_compare import (
    DIGITS,
    NAME,
    NUMBER,
    WHEN,
    compare_detectors,
    dtmf_keys,
    format_table,
    fsk_burst,
    mdmf_message,
    progress_tone,
)


@pytest.fixture(autouse=True)
def _libspandsp() -> None:
    """Fail (never skip) every test here when libspandsp2 is missing."""
    try:
        spandsp.library()
    except spandsp.SpandspMissing as exc:
        pytest.fail(f"{exc}: the spandsp comparison needs it, install libspandsp2")


def test_binding_detects_clean_dtmf_string() -> None:
    with spandsp.SpandspDtmfRx() as rx:
        events = spandsp.run(rx.feed, dtmf_keys(DIGITS + "0815", level_dbm0=-10))
    print("spandsp:", [(e.digit, e.start_ms, e.duration_ms) for e in events])
    assert "".join(e.digit for e in events) == DIGITS + "0815"
    assert all(40 <= e.duration_ms <= 120 for e in events)  # 80 ms keys, 1 ms stamps


@pytest.mark.parametrize("standard", ["bell202", "v23"])
def test_binding_decodes_clean_fsk_caller_id(standard: str) -> None:
    with spandsp.SpandspCallerIdRx(standard) as rx:
        records = spandsp.run(rx.feed, fsk_burst(mdmf_message(), standard))
    print(standard, records)
    assert [(r.number, r.name, r.when) for r in records] == [(NUMBER, NAME, WHEN)]
    assert rx.raw_messages == [mdmf_message()[:-1]]  # 0.0.6 strips the checksum byte


def test_binding_detects_us_busy_tone() -> None:
    with spandsp.SpandspToneRx("us") as rx:
        events = spandsp.run(rx.feed, progress_tone("us", "busy", 4))
    print("spandsp:", events)
    assert [e.tone for e in events][:1] == ["busy"]


def test_parse_class_message_reads_sdmf_and_mdmf() -> None:
    sdmf = bytes([0x04, 18]) + b"03141559" + b"5551234567"
    parsed = spandsp.parse_class_message(sdmf)
    assert parsed is not None
    assert (parsed.number, parsed.when, parsed.name) == ("5551234567", "03141559", None)
    private = spandsp.parse_class_message(bytes([0x04, 9]) + b"03141559P")
    assert private is not None
    assert (private.number, private.number_reason) == (None, "private")
    mdmf = spandsp.parse_class_message(mdmf_message()[:-1])
    assert mdmf is not None
    assert (mdmf.number, mdmf.name, mdmf.when) == (NUMBER, NAME, WHEN)


def test_binding_rejects_non_int16_input() -> None:
    with spandsp.SpandspDtmfRx() as rx, pytest.raises(ValueError, match="int16"):
        rx.feed(np.zeros(160, np.float32))


def test_our_detectors_meet_every_bound_of_the_quick_battery() -> None:
    rows = compare_detectors(quick=True)
    print("\n" + format_table(rows))
    failed = [f"{r['group']} / {r['check']}: expect {r['expect']}, got {r['tipring']!r}"
              for r in rows if not r["tipring_pass"]]  # fmt: skip
    assert len(rows) >= 25
    assert not failed, "our detectors miss bounds:\n" + "\n".join(failed)


def test_binding_reraises_an_exception_from_its_callback() -> None:
    class Broken(spandsp.SpandspDtmfRx):
        def _on_report(self, *args: Any) -> None:
            raise RuntimeError("callback broke")

    with Broken() as rx, pytest.raises(RuntimeError, match="callback broke"):
        spandsp.run(rx.feed, dtmf_keys("5"))


def test_missing_library_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(spandsp.SpandspMissing, match="libspandsp2"):
        spandsp.library.__wrapped__()
