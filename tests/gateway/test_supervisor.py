"""gateway.supervisor: a crashed child is logged and restarted with a doubling delay, capped and
reset by a stable run; its siblings never notice; `once` and `stopping` end restarts; shutdown
(cancellation) is no crash. All on trio's mock clock."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable

import pytest
import trio
from trio.testing import MockClock

from gateway.supervisor import STABLE_S, ChildState, Supervisor

LIMIT_S = 1000.0  # of mock time: every test ends long before


def crasher(
    starts: list[float], run_s: Callable[[int], float] = lambda n: 0.0
) -> Callable[[], Awaitable[None]]:
    """A child that records the time of each start, runs `run_s(start number)` and raises."""

    async def run() -> None:
        starts.append(trio.current_time())
        await trio.sleep(run_s(len(starts)))
        raise ValueError(f"boom {len(starts)}")

    return run


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_a_crashing_child_restarts_after_doubling_delays_up_to_the_cap(
    autojump_clock: MockClock,
) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=8.0)
    starts: list[float] = []
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "flaky", crasher(starts))
            await trio.sleep(1 + 2 + 4 + 8 + 8 + 8 + 0.5)
            nursery.cancel_scope.cancel()
    assert gaps(starts) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert (state.starts, state.crashes) == (7, 7)
    assert supervisor.children == {"flaky": state}


@pytest.mark.parametrize(
    ("third_run_s", "gap_after_it_s"),
    [(STABLE_S, STABLE_S + 1.0), (STABLE_S - 1.0, STABLE_S - 1.0 + 4.0)],
)
async def test_a_run_of_stable_s_resets_the_delay(
    autojump_clock: MockClock, third_run_s: float, gap_after_it_s: float
) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=30.0)
    starts: list[float] = []
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            run = crasher(starts, lambda n: third_run_s if n == 3 else 0.0)
            state = supervisor.start(nursery, "flaky", run)
            while state.starts < 5:
                await state.restarted.wait()
            nursery.cancel_scope.cancel()
    # starts 1, 2 crash at once (waits 1, 2); 3 runs third_run_s; 4 crashes at once
    after_fourth_s = 2.0 if third_run_s >= STABLE_S else 8.0  # reset, or doubling on from 4
    assert gaps(starts) == [1.0, 2.0, gap_after_it_s, after_fourth_s]


async def test_a_crash_is_logged_at_error_with_the_exception(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    supervisor = Supervisor(restart_min_s=2.5, restart_max_s=10.0)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            supervisor.start(nursery, "adapter", crasher([]))
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    [record] = caplog.records
    assert (record.name, record.levelno) == ("gateway.supervisor", logging.ERROR)
    assert record.getMessage() == "adapter failed: ValueError: boom 1; restarting it in 2.5 s"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "boom 1" in caplog.text  # the traceback's last line


async def test_a_sibling_keeps_running_while_a_child_crash_loops(autojump_clock: MockClock) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    ticks: list[float] = []

    async def steady() -> None:
        while True:
            ticks.append(trio.current_time())
            await trio.sleep(1.0)

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            calm = supervisor.start(nursery, "line 0", steady)
            flaky = supervisor.start(nursery, "line 1", crasher([]))
            await trio.sleep(1 + 2 + 4 + 8 + 0.5)  # flaky crashes at 0, 1, 3, 7, 15
            assert (flaky.starts, flaky.crashes) == (5, 5)
            assert (calm.starts, calm.crashes, calm.running, calm.last_error) == (1, 0, True, "")
            assert len(ticks) == 16  # a tick every second from 0 to 15: never paused
            nursery.cancel_scope.cancel()


async def test_a_once_child_that_returns_is_not_restarted(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    supervisor = Supervisor()
    runs: list[float] = []

    async def console() -> None:
        runs.append(trio.current_time())
        await trio.sleep(5.0)

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:  # ends by itself: nothing left to run
            state = supervisor.start(nursery, "console", console, once=True)
    assert runs == [runs[0]]
    assert trio.current_time() - runs[0] == 5.0
    assert (state.starts, state.crashes, state.running) == (1, 0, False)
    assert [r.getMessage() for r in caplog.records] == ["console ended"]


async def test_a_child_that_returns_is_restarted_with_a_warning(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    runs: list[float] = []

    async def quitter() -> None:
        runs.append(trio.current_time())

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "store", quitter)
            await trio.sleep(3.5)
            nursery.cancel_scope.cancel()
    assert gaps(runs) == [1.0, 2.0]
    assert (state.starts, state.crashes) == (3, 0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "store stopped by itself; restarting it in 1.0 s"),
        (logging.WARNING, "store stopped by itself; restarting it in 2.0 s"),
        (logging.WARNING, "store stopped by itself; restarting it in 4.0 s"),
    ]


async def test_a_once_child_that_crashes_is_still_restarted(autojump_clock: MockClock) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    starts: list[float] = []
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "console", crasher(starts), once=True)
            await trio.sleep(1.5)
            nursery.cancel_scope.cancel()
    assert (state.starts, state.crashes) == (2, 2)


async def test_no_restart_once_stopping_is_set(autojump_clock: MockClock) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    starts: list[float] = []
    supervisor.stopping = True
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:  # ends by itself: nothing is restarted
            state = supervisor.start(nursery, "adapter", crasher(starts, lambda n: 2.0))
    assert (state.starts, state.crashes, state.running) == (1, 1, False)
    assert state.last_error == "ValueError: boom 1"
    assert trio.current_time() - starts[0] == 2.0


async def test_stopping_set_while_a_child_waits_to_restart_ends_it(
    autojump_clock: MockClock,
) -> None:
    supervisor = Supervisor(restart_min_s=10.0, restart_max_s=60.0)
    starts: list[float] = []
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "line 0", crasher(starts))
            await trio.sleep(5.0)  # halfway through the 10 s wait
            assert (state.starts, state.running) == (1, False)
            supervisor.stopping = True
    assert (state.starts, state.crashes) == (1, 1)
    assert trio.current_time() - starts[0] == 10.0


async def test_a_child_that_returns_while_stopping_is_not_restarted(
    autojump_clock: MockClock,
) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    scope = trio.CancelScope()

    async def line() -> None:
        with scope:  # the app's drain cancels an idle line by its own scope
            await trio.sleep_forever()

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "line 0", line)
            await trio.sleep(3.0)
            supervisor.stopping = True
            scope.cancel()
    assert (state.starts, state.crashes, state.running) == (1, 0, False)


@pytest.mark.parametrize("cancel_at_s", [0.5, 1.5])  # while running; while waiting to restart
async def test_cancellation_ends_the_children_and_is_no_crash(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture, cancel_at_s: float
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.supervisor")
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    starts: list[float] = []

    async def steady() -> None:
        await trio.sleep_forever()

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            calm = supervisor.start(nursery, "line 0", steady)
            flaky = supervisor.start(nursery, "line 1", crasher(starts, lambda n: 1.0))
            await trio.sleep(cancel_at_s)
            nursery.cancel_scope.cancel(reason="shutdown")
    assert (calm.starts, calm.crashes, calm.running, calm.last_error) == (1, 0, False, "")
    assert (flaky.starts, flaky.crashes, flaky.running) == (1, int(cancel_at_s > 1.0), False)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == flaky.crashes  # the cancellation itself logs nothing


async def test_child_state_tracks_each_run(autojump_clock: MockClock) -> None:
    supervisor = Supervisor(restart_min_s=1.0, restart_max_s=60.0)
    starts: list[float] = []
    long = "x" * 1000

    async def run() -> None:
        starts.append(trio.current_time())
        await trio.sleep(2.0)
        raise RuntimeError(long if len(starts) == 2 else "port gone")

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            state = supervisor.start(nursery, "adapter", run)
            assert state == ChildState("adapter", restarted=state.restarted)  # nothing ran yet
            await trio.sleep(1.0)
            assert (state.starts, state.crashes, state.running) == (1, 0, True)
            await trio.sleep(1.5)  # crashed at 2, waits until 3
            assert (state.starts, state.crashes, state.running) == (1, 1, False)
            assert state.last_error == "RuntimeError: port gone"
            first_wait = state.restarted
            await state.restarted.wait()
            assert trio.current_time() == starts[0] + 3.0
            assert first_wait.is_set()
            assert state.restarted is not first_wait  # a fresh event for the next restart
            assert (state.starts, state.running) == (2, True)
            await trio.sleep(2.5)
            assert state.crashes == 2
            assert state.last_error == f"RuntimeError: {long}"[:300]
            assert len(state.last_error) == 300
            nursery.cancel_scope.cancel()
