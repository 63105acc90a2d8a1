"""`tipring run` and `tipring warmup`: the appliance's process around `gateway.app.App`.

`run_app(config_path)`: logging on stdout for journald (`gateway.applog`; the API keys the
config names are redacted from every line), the config (a bad one exits `EXIT_CONFIG` with the
key named: the unit's RestartPreventExitStatus keeps systemd from retrying a file that will not
get better by itself), the DSP kernels compiled or loaded from numba's cache before READY (with
EXTEND_TIMEOUT_USEC so a first start on a slow Pi is not killed), the heap collected and frozen,
then `App.run` under trio. `warmup()` compiles the kernels only (the installer runs it on the
device, as the service's user, into the service's cache).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable

import trio

from firmware_bridge.adapter_port import warm_port_kernels
from gateway.app import App
from gateway.applog import setup_logging
from gateway.call_audio import warm_up
from gateway.config import AppConfig, load_config
from gateway.console_io import STDIO
from gateway.errors import ConfigError
from gateway.line import warm_line_kernels
from gateway.sdnotify import Notifier

log = logging.getLogger(__name__)

EXIT_CONFIG = 78  # EX_CONFIG (sysexits.h): the config is wrong; systemd does not retry it
WARM_EXTEND_S = 300.0  # asked of systemd while the kernels compile (a Zero 2 W: ~1 minute)


def warm_kernels() -> float:
    """Compile (or load) every DSP kernel the box runs per frame; returns the seconds taken."""
    began = time.perf_counter()
    warm_up()
    warm_line_kernels()
    warm_port_kernels()
    return time.perf_counter() - began


def warmup() -> int:
    """`tipring warmup`: fill numba's cache for this CPU and these sources."""
    took = warm_kernels()
    print(f"tipring warmup: DSP kernels ready in {took:.1f} s")
    return 0


def run_app(config_path: str) -> int:
    """`tipring run --config PATH`; returns the exit status."""
    _, redact = setup_logging("info")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        log.error("config: %s", exc)
        return EXIT_CONFIG
    console = config.console
    on_stdio = console is not None and console.device == STDIO
    # A console on this terminal (development) owns stdout: the log goes to stderr then.
    ring, redact = setup_logging(config.service.log_level,
                                 stream=sys.stderr if on_stdio else None)  # fmt: skip
    _redact_keys(config, redact.add)
    notifier = Notifier.from_env()
    notifier.extend_timeout(WARM_EXTEND_S)
    notifier.status("warming the DSP kernels")
    log.info("DSP kernels ready in %.1f s", warm_kernels())
    gc.collect()
    gc.freeze()  # the start-up heap stays out of later collections (no stall mid-call)

    app = App(config, notifier, log_lines=ring.lines)
    try:
        return trio.run(app.run)
    finally:
        notifier.close()
        sys.stdout.flush()


def _redact_keys(config: AppConfig, add: Callable[[str], None]) -> None:
    for profile in config.profiles.values():
        if profile.api_key is not None:
            add(profile.api_key.reveal())
