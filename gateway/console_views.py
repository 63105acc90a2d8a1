"""How the admin console shows things: pure functions from `gateway.console_app` snapshots to
lines of text (no line ends, no colour: `gateway.console` adds those).

Every string that came from outside the console (caller ID names, transcripts, log lines, error
messages) goes through `clean` first: a caller ID name or a transcript holding ESC or other
control characters must not drive the operator's terminal.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from datetime import datetime

from gateway.console_app import (
    MASK,
    CallDetail,
    CallLevels,
    CallSummary,
    ConfigEntry,
    LineInfo,
    StatusSnapshot,
)

WIDTH = 80  # picocom/minicom/screen default; longer text is wrapped to it
LEVEL_FLOOR_DBM0 = -60.0  # the monitor's bar starts here (line noise is about -65 dBm0)
BAR_CHARS = 10


def clean(text: str) -> str:
    """`text` with every control or otherwise unprintable character shown as `?`."""
    return "".join(c if c.isprintable() else "?" for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the first line is the header."""
    cells = [list(headers), *([clean(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]  # fmt: skip


def format_duration(seconds: float | None) -> str:
    """`2:05`, `1:02:03`, `3d 04:05:06`; `-` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def render_status(s: StatusSnapshot) -> list[str]:
    memory = format_bytes(s.memory_rss_bytes)
    if s.memory_total_bytes:
        memory += f" of {format_bytes(s.memory_total_bytes)}"
    pairs = [
        ("version", s.version),
        ("uptime", format_duration(s.uptime_s)),
        ("adapter", f"{'up' if s.adapter_up else 'DOWN'}: {s.adapter}"),
        ("lines", f"{s.lines_up} of {s.lines_total} up"),
        ("calls", f"{s.calls_active} now, {s.calls_today} today"),
        ("cloud", f"{'ok' if s.cloud_ok else 'FAILING'}: {s.cloud}"),
        ("cpu", f"{s.cpu_percent:.1f} %"),
        ("memory", memory),
    ]
    return [f"{name:<8} {clean(value)}" for name, value in pairs]


def _figure(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def render_lines(lines: Sequence[LineInfo]) -> list[str]:
    """One row per port: its state and call, then its health (noise floor dBm0, loop volts,
    the last call's ERL dB and echo delay ms) and the alarms raised now."""
    if not lines:
        return ["no lines: is the adapter connected? (status)"]
    rows = [(str(x.port), x.kind, x.state, x.call_id or "-", x.detail or "-",
             _figure(x.noise_dbm0), _figure(x.volts, 0), _figure(x.erl_db),
             _figure(x.echo_delay_ms), ", ".join(x.alarms).upper() or "-")
            for x in lines]  # fmt: skip
    return table(("PORT", "KIND", "STATE", "CALL", "DETAIL", "NOISE", "V", "ERL", "DELAY",
                  "ALARMS"), rows)  # fmt: skip


def render_calls(calls: Sequence[CallSummary]) -> list[str]:
    if not calls:
        return ["no calls yet"]
    rows = [(c.call_id, format_time(c.started), str(c.port), c.direction[:3], c.caller or "-",
             format_duration(c.duration_s), c.end_reason or "running") for c in calls]  # fmt: skip
    return table(("CALL", "STARTED", "PORT", "DIR", "CALLER", "TIME", "END"), rows)


def render_call(detail: CallDetail) -> list[str]:
    c = detail.summary
    pairs: list[tuple[str, str]] = [
        ("call", c.call_id),
        ("port", str(c.port)),
        ("direction", c.direction),
        ("caller", c.caller or "-"),
        ("started", format_time(c.started)),
        ("duration", format_duration(c.duration_s)),
        ("ended", c.end_reason or "running"),
        *detail.facts,
    ]
    width = max(len(name) for name, _ in pairs)
    out = [f"{clean(name):<{width}}  {clean(value)}" for name, value in pairs]
    out.append("")
    if not detail.transcript:
        out.append("no transcript")
        return out
    out.append("transcript:")
    for line in detail.transcript:
        head = f"  [{format_duration(line.at_s)}] {clean(line.speaker)}: "
        body = textwrap.wrap(clean(line.text), WIDTH - len(head)) or [""]
        out.append(head + body[0])
        out.extend(" " * len(head) + more for more in body[1:])
    return out


def _bar(dbm0: float) -> str:
    if not math.isfinite(dbm0):
        return "." * BAR_CHARS
    share = (dbm0 - LEVEL_FLOOR_DBM0) / -LEVEL_FLOOR_DBM0
    filled = round(min(max(share, 0.0), 1.0) * BAR_CHARS)
    return "#" * filled + "." * (BAR_CHARS - filled)


def _level(dbm0: float) -> str:
    return f"{dbm0:6.1f} {_bar(dbm0)}" if math.isfinite(dbm0) else f"{'-':>6} {_bar(dbm0)}"


def render_monitor(calls: Sequence[CallLevels]) -> list[str]:
    """The monitor's screen: one row per running call."""
    head = f"monitor: {len(calls)} call{'s' if len(calls) != 1 else ''}; any key stops"
    if not calls:
        return [head, "no calls running"]
    rows = [(c.call_id, str(c.port), format_duration(c.duration_s), _level(c.caller_dbm0),
             _level(c.agent_dbm0), "-" if c.erle_db is None else f"{c.erle_db:.1f}",
             _figure(c.erl_db), _figure(c.echo_delay_ms),
             "speech" if c.vad_active else "-", "talking" if c.agent_speaking else "-")
            for c in calls]  # fmt: skip
    return [head, *table(("CALL", "PORT", "TIME", "CALLER dBm0", "AGENT dBm0", "ERLE dB",
                          "ERL", "DELAY", "VAD", "AGENT"), rows)]  # fmt: skip


def render_entry(entry: ConfigEntry) -> str:
    """`key = value` (masked if secret), with its note."""
    value = MASK if entry.secret else clean(entry.value)
    note = f"  ({clean(entry.note)})" if entry.note else ""
    return f"{clean(entry.key)} = {value}{note}"
