"""Shared pytest configuration: the numba cache, hypothesis profiles (no deadlines: numba
compiles on first call)."""

import os

from hypothesis import HealthCheck, settings

from gateway.numba_cache import configure_numba_cache

configure_numba_cache()  # before any test module imports numba: never run stale kernels

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile("ci", parent=settings.get_profile("default"), max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
