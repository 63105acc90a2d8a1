"""The numba cache directory follows the dsp sources, so an edit never runs stale kernels."""

from pathlib import Path

import pytest

from gateway import numba_cache


def test_cache_dir_is_keyed_by_the_dsp_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    first = numba_cache.configure_numba_cache()
    assert first == tmp_path / f"numba-{numba_cache.dsp_source_hash()}"
    assert numba_cache.configure_numba_cache() == first  # idempotent


def test_an_edit_to_any_dsp_module_changes_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_dsp = tmp_path / "dsp"
    fake_dsp.mkdir()
    (fake_dsp / "__init__.py").write_text("")
    (fake_dsp / "tone_frames.py").write_text("X = 1\n")
    monkeypatch.setattr(numba_cache.dsp, "__file__", str(fake_dsp / "__init__.py"))
    before = numba_cache.dsp_source_hash()
    (fake_dsp / "tone_frames.py").write_text("X = 2\n")
    assert numba_cache.dsp_source_hash() != before
