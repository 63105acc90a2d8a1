"""`Supervisor`: keeps the appliance's long-lived actors running. Each child (the adapter link,
one line actor per port, the call store's recorder, the console) runs in its own loop: when
it raises, the supervisor logs why (with the traceback), waits, and starts it again; the
other children never notice. The wait doubles from `restart_min_s` up to `restart_max_s`
and is back at the minimum once a run has lasted `STABLE_S`: a crash a minute apart is a
bug to log, a crash loop must not eat the CPU the calls need.

A child that returns is restarted the same way unless it was started with `once=True`
(a console on stdio whose terminal closed). Cancellation (shutdown) is never caught.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

log = logging.getLogger(__name__)

STABLE_S = 60.0  # a run this long resets the backoff


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows of one child (for `status` and the tests)."""

    name: str
    starts: int = 0
    crashes: int = 0
    running: bool = False
    last_error: str = ""  # "ValueError: ..." of the last crash
    restarted: trio.Event = field(default_factory=trio.Event)  # set at each restart


@dataclass(eq=False)
class Supervisor:
    """See the module docstring. `children` by name."""

    restart_min_s: float = 1.0
    restart_max_s: float = 60.0
    stopping: bool = False  # set at shutdown: a child that ends is not started again
    children: dict[str, ChildState] = field(default_factory=dict)

    def start(self, nursery: trio.Nursery, name: str, run: Callable[[], Awaitable[object]],
              *, once: bool = False) -> ChildState:  # fmt: skip
        """Run `run()` (a fresh call each start) under supervision in `nursery`."""
        state = self.children[name] = ChildState(name)
        nursery.start_soon(self._keep, state, run, once, name=f"supervised {name}")
        return state

    async def _keep(self, state: ChildState, run: Callable[[], Awaitable[object]],
                    once: bool) -> None:  # fmt: skip
        delay = self.restart_min_s
        while True:
            started_s = trio.current_time()
            state.starts += 1
            state.running = True
            try:
                await run()
            except Exception as exc:
                state.crashes += 1
                leaf = _first_leaf(exc)  # a nursery's group: say what went wrong inside
                state.last_error = f"{type(leaf).__name__}: {leaf}"[:300]
                log.error("%s failed: %s; restarting it in %.1f s", state.name,
                          state.last_error, delay, exc_info=exc)  # fmt: skip
            else:
                if once or self.stopping:
                    log.info("%s ended", state.name)
                    state.running = False
                    return
                log.warning("%s stopped by itself; restarting it in %.1f s", state.name, delay)
            finally:
                state.running = False
            if self.stopping:
                return
            if trio.current_time() - started_s >= STABLE_S:
                delay = self.restart_min_s
            await trio.sleep(delay)
            if self.stopping:  # shutdown began while it waited: no new run
                return
            delay = min(delay * 2, self.restart_max_s)
            state.restarted.set()
            state.restarted = trio.Event()


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
