"""The on-disk cache of tokenized calibration pools: same ids as tokenizing, keyed by content, recorded."""

import json

import pytest
import torch

from local_lm_fixture import local_task_params, write_checkpoint, write_text
from sparsebench import registry
from sparsebench.lm.task import token_stream, tokens_sha256


@pytest.fixture
def local_task(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBENCH_CACHE", str(tmp_path / "cache"))
    text = write_text(tmp_path / "text")
    ckpt = write_checkpoint(tmp_path / "ckpt", text)

    def build():
        return registry.task("lm-local").cls.build(local_task_params(ckpt, text), "t")

    return build, text, tmp_path / "cache"


def test_a_warm_cache_gives_the_ids_of_tokenizing_and_the_result_says_which_it_was(local_task):
    build, _, cache = local_task
    cold = build()
    ids_cold = cold.calibration_windows(0)
    assert cold.calibration_pool_cache == "miss"
    assert len(list((cache / "token_pools").glob("*.npy"))) == 1
    warm = build()
    ids_warm = warm.calibration_windows(0)
    assert warm.calibration_pool_cache == "hit"
    assert tokens_sha256(ids_warm) == tokens_sha256(ids_cold)
    p = warm.params
    pool = max(8 * p.calibration_window * p.calibration_windows, 4 * p.calibration_window)
    want = token_stream(warm.text_source().texts("calibration"), warm.tokenizer, pool)
    assert torch.equal(warm._calib_pool, want)


def test_an_edited_calibration_text_misses_the_cache_even_when_its_description_is_unchanged(local_task):
    build, text, cache = local_task
    first = build()
    first.calibration_windows(0)
    entry = next((cache / "token_pools").glob("*.json"))
    used = json.loads(entry.read_text())["texts"]
    # rewrite every text file in place (same names; the task's description keeps its old fingerprint)
    files = sorted(p for p in text.rglob("*") if p.is_file())
    for f in files:
        f.write_text(f.read_text()[::-1])
    again = registry.task("lm-local").cls(first.params)  # the same params and key: only the content check tells
    ids = again.calibration_windows(0)
    assert used >= 1 and again.calibration_pool_cache == "miss"
    want = token_stream(again.text_source().texts("calibration"), again.tokenizer, len(again._calib_pool))
    assert torch.equal(again._calib_pool, want) and ids.shape == first.calibration_windows(0).shape


def test_a_damaged_cache_entry_is_not_served(local_task):
    build, _, cache = local_task
    first = build()
    first.calibration_windows(0)
    npy = next((cache / "token_pools").glob("*.npy"))
    import numpy as np

    ids = np.load(npy)
    ids[0] = (ids[0] + 1) % 50
    np.save(npy, ids)
    again = build()
    again.calibration_windows(0)
    assert again.calibration_pool_cache == "miss"
    assert torch.equal(again._calib_pool, first._calib_pool)


def test_token_stream_reports_how_many_texts_the_ids_came_from():
    class Tok:
        eos_token_id = 0

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[1] * len(t) for t in texts]}

    used = []
    ids = token_stream(iter(["aaa", "bb", "cccc", "dd"]), Tok(), 6, used=used)
    assert len(ids) == 6 and used == [2]  # "aaa"+eos, "bb"+eos: 7 tokens >= 6 after the second text


def test_a_pruning_job_records_whether_its_pool_came_from_the_cache_and_the_same_token_hash(local_task, tmp_path):
    from sparsebench.runner import run_job
    from test_placement import job

    build, text, _ = local_task
    params = local_task_params(build().params.model, text)
    runs = [run_job(job("lm-local", "wanda", {"sparsity": 0.5, "pattern": "unstructured"}, params),
                    tmp_path / f"r{i}.json")["extra"]["calibration"] for i in range(2)]
    assert [r["token_pool_cache"] for r in runs] == ["miss", "hit"]
    assert runs[0]["tokens_sha256"] == runs[1]["tokens_sha256"]
