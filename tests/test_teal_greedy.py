"""TEAL's block-wise greedy allocation on the real offline model: the search, its cache, and the sparsity it yields."""

import json

import pytest
import torch

from conftest import small_lm_params
from sparsebench import registry
from sparsebench.activation import ActivationSparsifier, llama_blocks
from sparsebench.activation import greedy
from sparsebench.activation.greedy import KINDS, BlockSearch, allocation, dense_block_inputs, effective, greedy_paths
from sparsebench.families.activation_sparsity import Calibration, calibrate, weight_skip_fractions
from sparsebench.targets import Target

HELD_OUT = dict(calibration_window=128, calibration_windows=8)


@pytest.fixture(scope="module")
def lm():
    task = registry.task("lm-smollm2").cls.build(small_lm_params(**HELD_OUT), "test")
    model = task.load_model().eval()
    modules = task.decoder_blocks(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the search itself: many small block forwards
    yield task, model, modules, llama_blocks(model, modules)
    torch.set_num_threads(threads)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(greedy, "CACHE_DIR", tmp_path)
    return tmp_path


def block_search(lm, index=3, windows=2, tokens=32):
    task, model, modules, blocks = lm
    ids = task.calibration_windows(0)[:windows, :tokens]
    with torch.no_grad():
        for i, x, kw in dense_block_inputs(model, modules, ids):
            if i == index:
                return BlockSearch(model, modules[i], blocks[i], x, kw)


def test_each_greedy_step_raises_one_matrix_by_alpha_over_its_relative_size(lm):
    bs = block_search(lm)
    alpha = 0.1
    with torch.no_grad():
        path = bs.run(alpha, 0.2, [])
    w = bs.weights
    assert w["k"] == w["v"] == pytest.approx(1 / 3) and w["gate"] == w["down"] == pytest.approx(1536 / 576)
    before = {k: 0.0 for k in KINDS}
    for row in path:
        changed = [k for k in KINDS if row.sparsity[k] != before[k]]
        assert len(changed) == 1
        assert row.sparsity[changed[0]] - before[changed[0]] == pytest.approx(alpha / w[changed[0]])
        assert row.effective == pytest.approx(effective(before, w) + alpha / sum(w.values()))
        before = row.sparsity
    assert path[-2].effective < 0.2 <= path[-1].effective  # stops at the first row at or past the level


def test_greedy_block_output_error_is_at_most_uniforms_at_the_same_level_on_the_calibration_data(lm):
    bs = block_search(lm)
    with torch.no_grad():
        path = bs.run(0.1, 0.55, [])
        for level in (0.25, 0.4, 0.5):
            row = min(path, key=lambda r: abs(r.effective - level))
            uniform = float(bs.errors([{k: row.effective for k in KINDS}])[0])
            assert row.error <= uniform, (level, row.error, uniform)
            assert float(bs.errors([row.sparsity])[0]) == pytest.approx(row.error, rel=1e-5)


def test_greedy_path_is_deterministic_and_a_resumed_path_equals_a_fresh_one(lm):
    with torch.no_grad():
        a = block_search(lm).run(0.1, 0.2, [])
        b = block_search(lm).run(0.1, 0.2, [])
        resumed = block_search(lm).run(0.1, 0.2, a[:4])
    assert [r.sparsity for r in a] == [r.sparsity for r in b] == [r.sparsity for r in resumed]
    assert [r.error for r in a] == [r.error for r in b]


def test_allocation_takes_the_row_closest_to_the_level():
    rows = [greedy.Step(e, 0.0, {"q": e}) for e in (0.1, 0.2, 0.31, 0.4)]
    assert allocation(rows, 0.3)["q"] == 0.31
    assert allocation(rows, 0.14)["q"] == 0.1


def test_greedy_paths_are_cached_atomically_reused_and_extended(lm, cache, monkeypatch):
    task, model, modules, blocks = lm
    ids = task.calibration_windows(0)[:1, :16]
    with torch.no_grad():
        low = greedy_paths(model, modules, blocks, ids, 1.0, 0.1, {"test": 1}, log=lambda m: None)
    files = list(cache.iterdir())
    assert [f.suffix for f in files if not f.name.startswith(".")] == [".json"]  # no temporary left behind
    stored = json.loads(next(f for f in files if f.suffix == ".json").read_text())
    assert stored["key"]["alpha"] == 1.0 and len(stored["blocks"]) == len(blocks)

    def no_search(*a, **k):
        raise AssertionError("the cached path should have been used")

    with monkeypatch.context() as m, torch.no_grad():
        m.setattr(BlockSearch, "run", no_search)
        again = greedy_paths(model, modules, blocks, ids, 1.0, 0.1, {"test": 1}, log=lambda m: None)
    assert [[r.sparsity for r in p] for p in again] == [[r.sparsity for r in p] for p in low]
    with torch.no_grad():
        extended = greedy_paths(model, modules, blocks, ids, 1.0, 0.2, {"test": 1}, log=lambda m: None)
        monkeypatch.setattr(greedy, "CACHE_DIR", cache / "fresh")
        fresh = greedy_paths(model, modules, blocks, ids, 1.0, 0.2, {"test": 1}, log=lambda m: None)
    assert [[r.sparsity for r in p] for p in extended] == [[r.sparsity for r in p] for p in fresh]
    assert all(p[-1].effective >= 0.2 for p in extended)


def model_wide(model, blocks, zeros):
    modules = dict(model.named_modules())
    skip = weight_skip_fractions(blocks, zeros)
    sizes = {n: modules[n].weight.numel() for n in skip}
    return sum(skip[n] * sizes[n] for n in skip) / sum(sizes.values())


def held_out_model_wide_sparsity(lm, teal, target):
    task, model, _, blocks = lm
    calibration, held_out = task.calibration_windows(0), task.calibration_windows(1)
    with torch.no_grad():
        t = calibrate(teal, Calibration(model, blocks, calibration, 4), Target(target))
        with ActivationSparsifier(model, blocks, t) as sp:
            for batch in held_out.split(4):
                model(batch, use_cache=False)
    return model_wide(model, blocks, sp.fractions()), sp.fractions()


def test_unequal_per_matrix_levels_meet_the_model_wide_target_within_one_percent_on_held_out_windows(lm):
    """A greedy-like allocation (k, v barely sparse, q and down very sparse), each block at effective 0.5."""
    _, _, _, blocks = lm
    teal = registry.method("teal").cls.build({"allocation": "greedy", "calibration_windows": 8}, "test")
    skewed = {"q": 0.7, "k": 0.1, "v": 0.1, "o": 0.5, "gate": 0.4, "up": 0.4}
    w = {"q": 1, "k": 1 / 3, "v": 1 / 3, "o": 1, "gate": 8 / 3, "up": 8 / 3, "down": 8 / 3}
    skewed["down"] = (0.5 * sum(w.values()) - sum(w[k] * skewed[k] for k in skewed)) / w["down"]
    teal.levels[0.5] = [dict(skewed) for _ in blocks]  # what allocate() would have decided
    measured, zeros = held_out_model_wide_sparsity(lm, teal, 0.5)
    assert abs(measured - 0.5) <= 0.01
    q = sum(zeros[b["q"]] for b in blocks) / len(blocks)
    assert abs(q - 0.7) < 0.03 and sum(zeros[b["k"]] for b in blocks) / len(blocks) < 0.15


@pytest.mark.slow
def test_teal_greedy_measured_model_wide_sparsity_matches_target_within_one_percent_on_held_out_windows(lm, cache):
    teal = registry.method("teal").cls.build(
        {"allocation": "greedy", "calibration_windows": 8, "greedy_tokens": 64}, "test")
    measured, _ = held_out_model_wide_sparsity(lm, teal, 0.4)
    assert abs(measured - 0.4) <= 0.01
    levels = teal.record()["levels"]["0.4"]
    assert len({round(v, 6) for kind in KINDS for v in levels[kind]}) > 3  # not a uniform allocation
