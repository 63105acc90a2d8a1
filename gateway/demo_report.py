"""`tipring demo`'s call report: `demo_report` builds it (one JSON object) from a simulated
call (`gateway.simcall.SimResult`), `format_report` prints it for a person.

The top level is the call's own record (`CallRecord.as_json()`: the pipeline's figures,
measured on the box: `turn_latency_ms`, `barge_in_stop_ms`, `added_latency_ms`, `erle_db`,
`frames_late`, `transcript`, `ended_by`, ...). Beside it:
- `far_end`: the same kind of figures measured by the simulator at the far end of the line
  (`firmware_bridge.sim.caller.CallerScript.measure`), as a cross-check: the box's turn
  latency starts at its VAD's end of speech, the far end's at the caller's last voiced ms;
  the box's barge-in stop ends with its fade-out, the far end's when the line went quiet;
- `call_timeline`: what happened when, in ms from the answer, from the simulated line (rings,
  the caller's words and keys, the agent's audio as the caller heard it, the hang-up) and
  from the box (the call's own timeline);
- `wav`: the call's audio files, both directions.
"""

from __future__ import annotations

from typing import Any

from firmware_bridge.sim.caller import CallerReport
from firmware_bridge.sim.line import LineModel
from gateway.call_metrics import CallRecord
from gateway.simcall import LINE_CONFIG, LineWatch, SimResult, capture_paths
from gateway.simcall_scenario import CallerVoice


def demo_report(result: SimResult, voice: CallerVoice, out_dir: str) -> dict[str, Any]:
    """The report of the demo's one call (port 0). Without a record (the call never
    started): `ended_by` says why and the figures are empty."""
    record, spec = result.records[0], result.specs[0]
    report: dict[str, Any] = record.as_json() if record is not None else _no_call(result)
    caller = result.reports[0]
    answer_s = spec.connected_s if spec is not None else None
    if answer_s is not None and record is not None and record.pre_answer_ms:
        answer_s += record.pre_answer_ms / 1000.0  # prepared while it rang: then answered
    watch = result.watches[0] if result.watches else None
    report["far_end"] = _far_end(caller, result.lines[0], watch, answer_s)
    report["call_timeline"] = _timeline(result, record, caller, voice, watch, answer_s)
    report["wav"] = {k: str(v) for k, v in capture_paths(record).items()} if record else {}
    report["out_dir"] = out_dir
    report["realtime_url"] = result.realtime_url
    report["realtime_server"] = "bundled local" if result.server is not None else "given URL"
    report["timed_out"] = result.timed_out
    report["elapsed_s"] = round(result.elapsed_s, 1)
    return report


def _no_call(result: SimResult) -> dict[str, Any]:
    why = "timed out before the call started" if result.timed_out else "no call started"
    return {"ended_by": why, "turn_latency_ms": [], "barge_in_stop_ms": [], "erle_db": None,
            "added_latency_ms": {"uplink_p50": None, "uplink_p99": None, "downlink_p50": None,
                                 "downlink_p99": None},
            "frames_late": 0, "transcript": [], "timeline": [], "tool_calls": []}  # fmt: skip


def _ms_from(watch: LineWatch | None, answer_s: float | None, line_ms: float | None
             ) -> float | None:  # fmt: skip
    if watch is None or answer_s is None or line_ms is None:
        return None
    return round((watch.trio_s(line_ms) - answer_s) * 1000.0)


def _far_end(caller: CallerReport, line: LineModel, watch: LineWatch | None,
             answer_s: float | None) -> dict[str, Any]:  # fmt: skip
    """Per utterance: when the caller spoke and what the agent did at the line. A barge-in's
    `ms` is its stop time; its `reply_ms` is the turn latency of the reply that followed
    (the box counts that one as a turn: its list and `turn_latency_ms` here line up)."""
    exchanges, turns = [], []
    for e in caller.exchanges:
        reply = line.host_voice_after(e.voice_end_ms) if e.voice_end_ms is not None else None
        reply_ms = None if reply is None or e.voice_end_ms is None else reply - e.voice_end_ms
        turn = reply_ms if e.barge_in else e.ms
        if turn is not None:
            turns.append(round(turn, 1))
        exchanges.append(
            {
                "label": e.label,
                "barge_in": e.barge_in,
                "voice_start_ms": _ms_from(watch, answer_s, e.voice_start_ms),
                "voice_end_ms": _ms_from(watch, answer_s, e.voice_end_ms),
                "agent_ms": _ms_from(watch, answer_s, e.agent_ms),
                "ms": _round(e.ms),
                "reply_ms": _round(reply_ms),
            }
        )
    return {
        "turn_latency_ms": turns,
        "barge_in_stop_ms": [round(v, 1) for v in caller.barge_in_stop_ms],
        "exchanges": exchanges,
    }


def _timeline(result: SimResult, record: CallRecord | None, caller: CallerReport,
              voice: CallerVoice, watch: LineWatch | None,
              answer_s: float | None) -> list[dict[str, Any]]:  # fmt: skip
    events: list[tuple[float, str, str]] = []
    if watch is not None and answer_s is not None:
        events += _line_events(result, caller, voice, watch, answer_s)
    if record is not None:
        rings = LINE_CONFIG.fxo.answer_after_rings
        events.append((0.0, "box", f"answered on ring {rings} (caller ID {_who(record)})"))
        tools = {f"tool {t.name}": t for t in record.tool_calls}
        for t_s, what in record.timeline:
            tool = tools.get(what)
            if tool is not None:
                what += f" ({tool.outcome} in {tool.duration_s * 1e3:.1f} ms)"
            events.append((t_s * 1000.0, "box", _box_event(what)))
        events.append((record.duration_s * 1000.0, "box", f"call over: {record.ended_by}"))
    events.sort(key=lambda e: e[0])
    return [{"t_ms": round(t), "source": src, "event": what} for t, src, what in events]


_LINE_STATES = {"line connected": "the line is answered (off-hook)",
                "line far_hung_up": "the caller hangs up (loop current drops)",
                "line idle": "the line is idle again (the box is on-hook)"}  # fmt: skip


def _line_events(result: SimResult, caller: CallerReport, voice: CallerVoice,
                 watch: LineWatch, answer_s: float) -> list[tuple[float, str, str]]:  # fmt: skip
    line = result.lines[0]
    out = [((t - answer_s) * 1000.0, "line", _LINE_STATES.get(what, what))
           for t, what in watch.events if what != "line ringing"]  # fmt: skip
    first = line.host_voice_after((answer_s - watch.offset_s) * 1000.0)
    if first is not None:
        out.append((_ms_from(watch, answer_s, first) or 0.0, "line", "the caller first "
                    "hears the box (the greeting)"))  # fmt: skip
    for e in caller.exchanges:
        words = voice.words.get(e.label)
        said = f'caller says "{words}"' if words else f"caller: {e.label}"
        said = said.replace("caller: press", "caller presses")
        if e.barge_in:
            said += " over the agent (barge-in)" if e.agent_ms is not None else " (to barge in)"
        at = _ms_from(watch, answer_s, e.voice_start_ms)
        if at is not None:
            out.append((at, "line", said))
        agent = _ms_from(watch, answer_s, e.agent_ms)
        if agent is not None and e.ms is not None:
            what = (f"the agent is silent at the line, {e.ms:.0f} ms after the caller's onset"
                    if e.barge_in else f"the caller hears the agent, {e.ms:.0f} ms after "
                    "the end of their speech")  # fmt: skip
            out.append((agent, "line", what))
        if e.barge_in and e.voice_end_ms is not None:
            reply = line.host_voice_after(e.voice_end_ms)
            if reply is not None:
                out.append((_ms_from(watch, answer_s, reply) or 0.0, "line", "the caller hears"
                            f" the agent, {reply - e.voice_end_ms:.0f} ms after the end of "
                            "their speech"))  # fmt: skip
    return out


def _box_event(what: str) -> str:
    if what.startswith("agent audio "):
        return f"the cloud's first audio of {what.removeprefix('agent audio ')} arrives"
    return what


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _who(record: CallRecord) -> str:
    cid = record.callerid
    if cid is None:
        return "none"
    return " ".join(p for p in (cid.number, cid.name) if p) or "withheld"


def _ms_list(values: list[float], unit: str = "ms") -> str:
    return ", ".join(f"{v:.1f}" for v in values) + f" {unit}" if values else "-"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_report(r: dict[str, Any]) -> str:
    """The report for a person: header, timeline, metrics, transcript, files."""
    lines = [f"tipring demo: one simulated call, end to end, on the real clock "
             f"({r['elapsed_s']:.1f} s)",
             f"  agent: {r['realtime_server']} realtime server at {r['realtime_url']}",
             f"  call {r.get('call_id', '-')}: {r['ended_by']}"
             + (f" after {r['duration_s']:.1f} s" if "duration_s" in r else "")]  # fmt: skip
    if r["timed_out"]:
        lines.append("  THE DEMO TIMED OUT: the call was cut short")
    if "scenario" in r:
        scenario = r["scenario"]
        lines += ["", f"Scenario {scenario['name']}: {scenario['summary']}"]
        lines += [f"  {k}: {v}" for k, v in scenario["facts"].items()]
    lines += ["", "Timeline (ms from the answer; line = heard at the far end of the simulated "
              "line, box = the call's own log)"]  # fmt: skip
    lines += [f"  {e['t_ms']:>7}  {e['source']:<4}  {e['event']}" for e in r["call_timeline"]]
    lines += ["", "Metrics (measured on the box; far end = measured on the simulated line, a "
              "cross-check)", *_metrics(r)]  # fmt: skip
    lines += ["", "Transcript"]
    lines += [f"  {t['who']:>6}: {t['text']}" for t in r["transcript"]] or ["  (none)"]
    lines += ["", f"Call audio (8 kHz 16-bit WAV) in {r['out_dir']}"]
    names = {"uplink": "uplink (the caller, after the echo canceller)",
             "line": "downlink (what the box sent to the line)"}  # fmt: skip
    lines += [f"  {names.get(k, k)}: {v}" for k, v in r["wav"].items()] or ["  (none)"]
    return "\n".join(lines)


def _metrics(r: dict[str, Any]) -> list[str]:
    far = r["far_end"]
    added = r["added_latency_ms"]
    turns = [f"{e['reply_ms' if e['barge_in'] else 'ms']:.0f} ({e['label']})"
             for e in far["exchanges"]
             if e["reply_ms" if e["barge_in"] else "ms"] is not None]  # fmt: skip
    tools = ", ".join(f"{t['name']} {t['outcome']} in {t['duration_ms']:.1f} ms"
                      for t in r.get("tool_calls", [])) or "-"  # fmt: skip
    bi = r.get("barge_ins", {})
    return [
        f"  turn latency       {_ms_list(r['turn_latency_ms'])}   "
        f"(far end: {', '.join(turns) or '-'} ms)",
        "                     (caller's end of speech -> agent audio at the line; the box "
        "times voice turns,",
        "                     the far end keys too: those include the box's wait for more "
        "digits, 1 s)",
        f"  barge-in stop      {_ms_list(r['barge_in_stop_ms'])}   "
        f"(far end: {_ms_list(far['barge_in_stop_ms'])})",
        "                     (caller's onset -> agent silent; the far end's adds the "
        "adapter's one-frame playout prebuffer)",
        f"  added latency      uplink p50 {_num(added['uplink_p50'])} / p99 "
        f"{_num(added['uplink_p99'])} ms, downlink p50 {_num(added['downlink_p50'])} / p99 "
        f"{_num(added['downlink_p99'])} ms",
        f"  ERLE               {_num(r['erle_db'], '{:.1f}')} dB",
        f"  frames             {r.get('frames', 0)} handled, {r['frames_late']} late, "
        f"{r.get('frames_to_cloud_dropped', 0)} not taken by the cloud session",
        f"  underruns          {r.get('underruns', 0)}    reconnects {r.get('reconnects', 0)}",
        f"  barge-ins          paused {bi.get('paused', 0)}, confirmed {bi.get('confirmed', 0)}"
        f", resumed {bi.get('resumed', 0)}, cloud only {bi.get('cloud_only', 0)}",
        f"  tool calls         {tools}",
        f"  digits             {r.get('dtmf') or '-'}",
    ]
