"""torch.compile's and Triton's caches live in the machine's cache, unless the user chose where."""

from sparsebench.cache import persistent_compile_cache


def test_compile_caches_go_under_the_sparsebench_cache_when_the_user_set_none(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    rec = persistent_compile_cache()
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "triton")
    assert (tmp_path / "inductor").is_dir() and (tmp_path / "triton").is_dir()
    assert rec["TORCHINDUCTOR_CACHE_DIR"]["set_by"] == "sparsebench"
    assert rec["fx_graph_cache"] in (True, False)


def test_a_cache_directory_the_user_set_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "sb"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    rec = persistent_compile_cache()
    assert rec["TORCHINDUCTOR_CACHE_DIR"] == {"path": str(tmp_path / "mine"), "set_by": "user"}
    assert rec["TRITON_CACHE_DIR"]["set_by"] == "sparsebench"
