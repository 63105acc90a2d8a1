"""gateway.playout: bursts paced out exactly, comfort noise in gaps, click-free fades, pause /
resume / flush, exact played-ms accounting, stats, bad input; a trio loop on the mock clock;
the vectorised gain helpers against per-sample references; a hypothesis run of random
operations that checks the invariants (and, on DC input, that no step beats a fade's slope).

Comfort noise at -99 dBm0 (peak 0.44) rounds to digital zero: the tests that follow agent
samples through the output use it, so every nonzero output sample is agent audio (within
one LSB of rounding).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from trio.testing import MockClock

from dsp.frame import FRAME_S, FRAME_SAMPLES, RATE_HZ
from dsp.levels import dbm0_to_rms, rms_to_dbm0
from gateway.playout import (
    FADE_SAMPLES,
    FlushedItem,
    PlayoutBuffer,
    PlayoutInputError,
    _mirror_fade,
    _real_gains,
)

QUIET_DBM0 = -99.0  # peak 0.44 LSB, rounds to 0: output = agent audio only
DC = 8000  # a constant agent signal: any step in the output is a gain step
DC_STEP = DC / FADE_SAMPLES + 1  # the steepest a fade may move it, + rounding
I16 = NDArray[np.int16]


def dc(samples: int, value: int = DC) -> I16:
    return np.full(samples, value, np.int16)


def sine(samples: int, amplitude: float = 8000.0, freq_hz: float = 400.0) -> I16:
    t = np.arange(samples) / RATE_HZ
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def pull(buf: PlayoutBuffer, frames: int, t0: float = 0.0) -> I16:
    """`frames` ticks from `t0`, concatenated; each frame checked for shape and dtype."""
    out = []
    for k in range(frames):
        frame = buf.next_frame(t0 + k * FRAME_S)
        assert frame.shape == (FRAME_SAMPLES,)
        assert frame.dtype == np.int16
        out.append(frame)
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def max_step(x: I16) -> int:
    return int(np.max(np.abs(np.diff(x.astype(np.int64)))))


def noise_step(level_dbm0: float) -> float:
    """The largest step comfort noise alone can make: twice its peak (triangular, sqrt(6) rms)."""
    return 2.0 * math.sqrt(6.0) * dbm0_to_rms(level_dbm0) + 1.0


def level_dbm0(x: I16) -> float:
    return rms_to_dbm0(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


# --- bursts and pacing ------------------------------------------------------------------------


def test_burst_of_5_s_in_200_ms_is_paced_out_exactly() -> None:
    rng = np.random.default_rng(1)
    audio = rng.integers(-12000, 12000, 5 * RATE_HZ).astype(np.int16)
    # 100 ms deltas, one every 4 ms: all 5 s arrive within 200 ms
    arrivals = [(k * 0.004, delta) for k, delta in enumerate(np.split(audio, 50))]
    buf = PlayoutBuffer()
    out, pushed, most = [], 0, 0
    for k in range(300):
        now = 0.001 + k * FRAME_S
        while arrivals and arrivals[0][0] <= now:
            at, delta = arrivals.pop(0)
            buf.push(delta, "resp", "item", at)
            pushed += delta.size
        if not arrivals:
            buf.end_response("resp")
        most = max(most, buf.buffered_samples)
        out.append(buf.next_frame(now))
        assert buf.buffered_samples == max(0, pushed - (k + 1) * FRAME_SAMPLES)  # 1 frame a tick
    assert most >= 4.7 * RATE_HZ
    played = np.concatenate(out)
    np.testing.assert_array_equal(played[FADE_SAMPLES : len(audio)], audio[FADE_SAMPLES:])
    ramp = (np.arange(FADE_SAMPLES) + 0.5) / FADE_SAMPLES
    fade_in = played[:FADE_SAMPLES] - ramp * audio[:FADE_SAMPLES]
    assert np.max(np.abs(fade_in)) <= noise_step(-65.0)
    stats = buf.stats
    assert buf.played_ms("item") == 5000
    assert stats.frames == 300
    assert stats.underrun_frames == 0
    assert stats.dropped_samples == 0
    assert stats.first_audio_ms == [pytest.approx(1.0)]
    assert level_dbm0(played[len(audio) + FADE_SAMPLES :]) == pytest.approx(-65.0, abs=3.0)


async def test_trio_loop_pulls_a_frame_per_tick_while_deltas_burst_in(
    autojump_clock: MockClock,
) -> None:
    """The way the call uses it: one task feeds deltas from a channel, the tick loop pulls."""
    audio = sine(2 * RATE_HZ + 5)[5:]  # no zero sample first: the start is where it shows
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    frames: list[I16] = []
    send, recv = trio.open_memory_channel[I16](64)

    async def cloud() -> None:
        async with send:
            for delta in np.split(audio, 20):
                await trio.sleep(0.005)  # 2 s of audio in 100 ms
                await send.send(delta)

    async def feed() -> None:
        async with recv:
            async for delta in recv:
                buf.push(delta, "r", "i", trio.current_time())
            buf.end_response("r")

    with trio.fail_after(10.0):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cloud)
            nursery.start_soon(feed)
            tick = trio.current_time()
            for _ in range(110):
                tick += FRAME_S
                await trio.sleep_until(tick)
                frames.append(buf.next_frame(trio.current_time()))
    played = np.concatenate(frames)
    start = int(np.flatnonzero(played)[0])
    assert start % FRAME_SAMPLES == 0
    np.testing.assert_array_equal(
        played[start + FADE_SAMPLES : start + len(audio)], audio[FADE_SAMPLES:]
    )
    assert buf.played_ms("i") == 2000
    assert buf.stats.underrun_frames == 0
    assert 0.0 < buf.stats.first_audio_ms[0] <= 1000 * FRAME_S


# --- gaps, comfort noise and fades -----------------------------------------------------------


@pytest.mark.parametrize("level", [-70.0, -65.0, -50.0, -40.0])
def test_idle_line_gets_comfort_noise_at_the_configured_level(level: float) -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=level)
    out = pull(buf, 50)
    print(f"comfort noise: asked {level} dBm0, measured {level_dbm0(out):.2f} dBm0")
    assert level_dbm0(out) == pytest.approx(level, abs=3.0)
    assert np.count_nonzero(out) > 0.5 * out.size  # noise, not digital silence


@pytest.mark.parametrize("delta_samples", [1000, 1600, 333])
def test_gap_in_an_item_fades_out_and_in_without_a_click(delta_samples: int) -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=-65.0)
    buf.push(dc(delta_samples), "r", "i", 0.0)
    first = pull(buf, 15)
    buf.push(dc(delta_samples), "r", "i", 0.3)
    second = pull(buf, 15, t0=0.3)
    out = np.concatenate((first, second))
    bound = DC_STEP + noise_step(-65.0)
    print(f"largest step {max_step(out)}, bound {bound:.0f} (a cut would step {DC})")
    assert max_step(out) <= bound
    gap = first[delta_samples + FADE_SAMPLES :]
    assert level_dbm0(gap) == pytest.approx(-65.0, abs=3.0)
    assert buf.played_samples("i") == 2 * delta_samples
    full_frames = 2 * (delta_samples // FRAME_SAMPLES)  # the rest ran dry, or were gaps
    assert buf.stats.underrun_frames == 2 * 15 - full_frames


def test_sine_running_dry_mid_frame_steps_no_more_than_itself() -> None:
    audio = sine(1234)
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    buf.push(audio, "r", "i", 0.0)
    out = pull(buf, 10)
    np.testing.assert_array_equal(out[FADE_SAMPLES : len(audio)], audio[FADE_SAMPLES:])
    assert max_step(out) <= max_step(audio) + DC_STEP
    tail = out[len(audio) : len(audio) + FADE_SAMPLES]
    mirrored = audio[::-1][:FADE_SAMPLES]  # the fade-out continues the wave, mirrored
    ramp = (FADE_SAMPLES - np.arange(FADE_SAMPLES) - 0.5) / FADE_SAMPLES
    np.testing.assert_allclose(tail, ramp * mirrored, atol=1.0)
    assert not out[len(audio) + FADE_SAMPLES :].any()


# --- pause, resume, flush --------------------------------------------------------------------


def test_pause_fades_out_within_40_samples_then_comfort_noise() -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=-65.0)
    buf.push(dc(RATE_HZ), "r", "i", 0.0)
    before = pull(buf, 10)
    assert buf.speaking
    buf.pause()
    fade = buf.next_frame(0.2)
    assert buf.speaking  # the fade frame carries the agent's last 40 samples
    after = pull(buf, 10, t0=0.22)
    assert not buf.speaking
    assert buf.current_item == ("r", "i")
    noise = noise_step(-65.0) / 2
    assert np.all(np.diff(fade[:FADE_SAMPLES].astype(int)) < 0)  # falling from the first
    assert abs(int(fade[FADE_SAMPLES - 1])) <= DC * 0.5 / FADE_SAMPLES + noise
    assert np.max(np.abs(fade[FADE_SAMPLES:])) <= noise
    assert max_step(np.concatenate((before, fade))) <= DC_STEP + 2 * noise
    assert level_dbm0(after) == pytest.approx(-65.0, abs=3.0)
    assert buf.played_samples("i") == 10 * FRAME_SAMPLES + FADE_SAMPLES
    assert buf.played_ms("i") == 205
    assert buf.stats.underrun_frames == 0


def test_resume_plays_every_sample_once_in_order() -> None:
    audio = (10000 + np.arange(3 * RATE_HZ) % 12000).astype(np.int16)
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    for k, delta in enumerate(np.array_split(audio, 7)):
        buf.push(delta, "r", f"i{k // 4}", 0.0)
    out = [pull(buf, 3)]
    for hold, play in [(1, 5), (4, 1), (2, 0), (1, 12), (3, 2)]:
        buf.pause()
        out.append(pull(buf, hold))
        buf.resume()
        out.append(pull(buf, play))
    buf.pause()
    buf.resume()  # before any frame: nothing to hear
    out.append(pull(buf, 150))
    played = np.concatenate(out)
    agent = played[played != 0]
    assert agent.size == audio.size + FADE_SAMPLES  # + the fade-out after the last sample
    agent = agent[: audio.size]  # nothing twice, nothing skipped
    full = agent == audio
    scale = agent[~full] / audio[~full]  # faded samples: the same sample, scaled
    assert np.all((scale > 0) & (scale < 1))
    assert np.count_nonzero(~full) <= 2 * FADE_SAMPLES * 6
    assert buf.played_samples("i0") + buf.played_samples("i1") == audio.size


def test_flush_drops_everything_and_fades_out_from_what_was_played() -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    buf.push(dc(RATE_HZ), "r1", "a", 0.0)
    buf.push(dc(RATE_HZ, -DC), "r1", "b", 0.0)  # never heard: flushed before it starts
    played = pull(buf, 25)
    flushed = buf.flush()
    assert flushed == [
        FlushedItem("r1", "a", played_ms=500, dropped_samples=RATE_HZ // 2),
        FlushedItem("r1", "b", played_ms=0, dropped_samples=RATE_HZ),
    ]
    assert buf.buffered_samples == 0
    assert buf.current_item is None
    buf.push(dc(800, -DC), "r1", "b", 0.51)  # still in flight when we flushed: refused
    fade = pull(buf, 3, t0=0.5)
    assert np.all(fade >= 0)
    assert max_step(np.concatenate((played, fade))) <= DC_STEP
    assert not fade[FADE_SAMPLES:].any()
    assert buf.played_ms("a") == 500
    assert buf.played_ms("b") == 0
    stats = buf.stats
    assert (stats.flushed_samples, stats.refused_samples) == (RATE_HZ * 3 // 2, 800)
    assert stats.underrun_frames == 0
    buf.push(dc(800), "r2", "c", 0.6)  # the next answer plays
    assert pull(buf, 1, t0=0.6)[FADE_SAMPLES:].tolist() == [DC] * (FRAME_SAMPLES - FADE_SAMPLES)
    assert buf.current_item == ("r2", "c")


def test_flush_ends_a_pause_and_an_empty_flush_returns_nothing() -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    assert buf.flush() == []
    buf.push(dc(1600), "r", "i", 0.0)
    pull(buf, 2)
    buf.pause()
    pull(buf, 2)
    assert buf.flush() == [FlushedItem("r", "i", 45, 1600 - 320 - FADE_SAMPLES)]
    assert not buf.paused
    buf.push(dc(320), "r2", "j", 1.0)
    assert pull(buf, 2, t0=1.0)[-1] == DC


def test_played_ms_is_exact_across_items_pause_resume_and_flush() -> None:
    buf = PlayoutBuffer()
    buf.push(dc(1000), "r1", "a", 0.0)
    buf.push(dc(2000), "r1", "b", 0.0)
    pull(buf, 7)  # 1120 samples: all of a, 120 of b
    assert (buf.played_ms("a"), buf.played_ms("b")) == (125, 15)
    assert buf.current_item == ("r1", "b")
    buf.pause()
    pull(buf, 5)
    assert buf.played_samples("b") == 160  # the fade's 40 samples count as played
    assert buf.played_ms("b") == 20
    buf.resume()
    pull(buf, 2)
    assert buf.played_ms("b") == 60
    buf.pause()
    pull(buf, 1)
    buf.resume()
    pull(buf, 1)
    assert buf.played_samples("b") == 480 + FADE_SAMPLES + FRAME_SAMPLES
    assert buf.flush() == [FlushedItem("r1", "b", 85, 2000 - 680)]
    pull(buf, 3)
    assert (buf.played_ms("a"), buf.played_ms("b"), buf.played_ms("never")) == (125, 85, 0)


# --- stats ----------------------------------------------------------------------------------


def test_first_audio_latency_per_response() -> None:
    buf = PlayoutBuffer()
    buf.push(dc(800), "r1", "a", 0.005)
    pull(buf, 1, t0=0.02)
    pull(buf, 49, t0=0.04)
    buf.push(dc(800), "r2", "b", 1.001)
    buf.push(dc(800), "r2", "b", 1.009)  # only the first delta of a response counts
    pull(buf, 1, t0=1.02)
    assert buf.stats.first_audio_ms == [pytest.approx(15.0), pytest.approx(19.0)]


def test_underruns_count_only_started_unfinished_items() -> None:
    buf = PlayoutBuffer()
    pull(buf, 3)  # nothing started
    buf.push(dc(800), "r1", "a", 0.0)
    pull(buf, 8)  # 5 full, then a started, unfinished item runs dry: 3 underruns
    buf.push(dc(800), "r1", "a", 0.2)
    buf.end_response("r1")
    pull(buf, 8)  # 5 full, then finished: the end of speech, not an underrun
    assert buf.current_item is None
    buf.push(dc(400), "r2", "b", 0.4)
    buf.push(dc(400), "r2", "c", 0.4)  # a later item finishes b
    pull(buf, 5)  # 5 frames of 160 from 800: c was not finished
    pull(buf, 2)
    stats = buf.stats
    assert stats.frames == 26
    assert stats.underrun_frames == 3 + 2


def test_cap_drops_the_rest_of_the_item_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    buf = PlayoutBuffer(max_buffered_s=0.1)  # 800 samples
    with caplog.at_level(logging.WARNING, logger="gateway.playout"):
        buf.push(dc(1000), "r", "a", 0.0)
        pull(buf, 2)  # room again, but a lost its tail: the rest of it is dropped too
        buf.push(dc(100), "r", "a", 0.0)
        buf.push(dc(300), "r", "b", 0.0)
    assert buf.stats.dropped_samples == 200 + 100
    assert buf.buffered_samples == 800 - 320 + 300
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "dropping the rest of item a" in caplog.records[0].getMessage()
    pull(buf, 10)
    assert (buf.played_samples("a"), buf.played_samples("b")) == (800, 300)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pcm", "response_id", "item_id", "received_at", "message"),
    [
        (np.zeros(160, np.float32), "r", "i", 0.0, "pcm must be a 1-D int16 array, got float32"),
        (np.zeros((2, 80), np.int16), "r", "i", 0.0, "got int16 (2, 80)"),
        ([0] * 160, "r", "i", 0.0, "got list"),
        (np.zeros(160, np.int16), "", "i", 0.0, "response_id must be a non-empty str"),
        (np.zeros(160, np.int16), "r", "", 0.0, "item_id must be a non-empty str"),
        (np.zeros(160, np.int16), "r", "i", math.nan, "received_at must be a finite time"),
        (np.zeros(160, np.int16), "other", "a", 0.0, "item a belongs to response r"),
    ],
)
def test_bad_push_raises_and_keeps_what_is_buffered(
    pcm: object, response_id: str, item_id: str, received_at: float, message: str
) -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0)
    buf.push(dc(480), "r", "a", 0.0)
    pull(buf, 1)
    with pytest.raises(PlayoutInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        buf.push(pcm, response_id, item_id, received_at)  # type: ignore[arg-type]
    assert buf.buffered_samples == 320
    assert buf.current_item == ("r", "a")
    pull(buf, 3)
    assert buf.played_samples("a") == 480


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"comfort_noise_dbm0": math.inf}, "comfort_noise_dbm0"),
        ({"comfort_noise_dbm0": 10.0}, "comfort_noise_dbm0"),
        ({"max_buffered_s": 0.0}, "max_buffered_s"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PlayoutInputError, match=message):
        PlayoutBuffer(**kwargs)  # type: ignore[arg-type]


def test_empty_delta_is_ignored() -> None:
    buf = PlayoutBuffer()
    buf.push(np.zeros(0, np.int16), "r", "i", 0.0)
    pull(buf, 1)
    assert buf.current_item is None
    assert buf.stats.first_audio_ms == []


# --- the vectorised helpers against per-sample references ----------------------------------


def ref_real_gains(level: int, real: int, falling: bool) -> tuple[list[float], int]:
    gains = []
    for _ in range(real):
        after = max(level - 1, 0) if falling else min(level + 1, FADE_SAMPLES)
        gains.append((level + after) / 2 / FADE_SAMPLES)
        level = after
    return gains, level


def test_real_gains_match_reference() -> None:
    for level in range(FADE_SAMPLES + 1):
        for real in range(FRAME_SAMPLES + 1):
            for falling in (False, True):
                if falling and real > level:
                    continue  # the pause fade never takes more than the level
                gain = np.full(real, np.nan)
                end = _real_gains(level, real, falling, gain)
                want, want_end = ref_real_gains(level, real, falling)
                assert end == want_end
                np.testing.assert_allclose(gain, want, rtol=0, atol=1e-15)


def test_mirror_fade_matches_reference() -> None:
    history = np.arange(1.0, FADE_SAMPLES + 1) * 100
    for level in range(1, FADE_SAMPLES + 1):
        sig, gain = _mirror_fade(history, level)
        for j in range(level):
            g = (level - j - 0.5) / FADE_SAMPLES
            assert gain[j] == pytest.approx(g, abs=1e-15)
            assert sig[j] == pytest.approx(g * history[FADE_SAMPLES - 1 - j], abs=1e-9)
        assert sig.shape == gain.shape == (level,)


# --- random operations ------------------------------------------------------------------------

ITEMS = ["i0", "i1", "i2", "i3"]  # i0, i1 of response r0; i2, i3 of r1
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 3), st.integers(0, 700)),
        st.tuples(st.just("frames"), st.integers(1, 4), st.just(0)),
        st.tuples(st.sampled_from(["pause", "resume", "flush"]), st.just(0), st.just(0)),
        st.tuples(st.just("end"), st.integers(0, 1), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(ops=OPS)
def test_random_operations_keep_invariants(ops: list[tuple[str, int, int]]) -> None:
    buf = PlayoutBuffer(comfort_noise_dbm0=QUIET_DBM0, max_buffered_s=0.2)
    pushed = dict.fromkeys(ITEMS, 0)
    played = dict.fromkeys(ITEMS, 0)
    out: list[I16] = []
    paused_since: int | None = None  # played total when the pause began
    frames = 0
    for op, arg, size in ops:
        if op == "push":
            buf.push(dc(size), f"r{arg // 2}", ITEMS[arg], frames * FRAME_S)
            pushed[ITEMS[arg]] += size
        elif op == "frames":
            out.append(pull(buf, arg, t0=frames * FRAME_S))
            frames += arg
        elif op == "pause":
            paused_since = sum(played.values()) if paused_since is None else paused_since
            buf.pause()
        elif op == "resume":
            paused_since = None
            buf.resume()
        elif op == "flush":
            paused_since = None
            buf.flush()
            assert buf.buffered_samples == 0
        else:
            buf.end_response(f"r{arg}")
        for item in ITEMS:
            now = buf.played_samples(item)
            assert played[item] <= now <= pushed[item]  # monotonic, never more than pushed
            assert buf.played_ms(item) == now * 1000 // RATE_HZ
            played[item] = now
        if paused_since is not None:
            assert sum(played.values()) - paused_since <= FADE_SAMPLES
    stats = buf.stats
    total = sum(played.values()) + buf.buffered_samples
    total += stats.dropped_samples + stats.flushed_samples + stats.refused_samples
    assert total == sum(pushed.values())
    assert stats.frames == frames
    if out:
        line = np.concatenate(out)
        assert max_step(line) <= DC_STEP  # no click, whatever the order of events
        assert line.min() >= 0
