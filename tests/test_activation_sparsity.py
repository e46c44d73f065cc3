"""Activation sparsity on the real offline model: TEAL and CHESS thresholds, hooks and measured sparsity."""

import pytest
import torch

from conftest import make_job, small_lm_params
from sparsebench import registry
from sparsebench.activation import ActivationSparsifier, MagnitudeHistogram, llama_blocks
from sparsebench.config import validate_config
from sparsebench.errors import ConfigError
from sparsebench.families.activation_sparsity import Calibration, calibrate
from sparsebench.runner import run_job
from sparsebench.targets import Target

HELD_OUT = dict(calibration_window=128, calibration_windows=8)


@pytest.fixture(scope="module")
def lm():
    task = registry.task("lm-smollm2").cls.build(small_lm_params(), "test")
    model = task.load_model().eval()
    blocks = llama_blocks(model, task.decoder_blocks(model))
    return task, model, blocks


def thresholds_of(method_name, lm, sparsity, **params):
    task, model, blocks = lm
    method = registry.method(method_name).cls.build(params, "test")
    calib = Calibration(model, blocks, task.calibration_windows(0), task.params.batch_size)
    with torch.no_grad():
        return calibrate(method, calib, Target(sparsity))


def test_histogram_quantile_inverts_the_empirical_distribution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, generator=g).abs() * 3.0
    x[:20_000] = 0.0  # exact zeros count as zeroed already
    h = MagnitudeHistogram()
    for chunk in x.split(50_000):
        h.add(chunk)
    for q in (0.15, 0.25, 0.5, 0.65, 0.9):
        t = h.quantile(q)
        assert abs(float((x <= t).double().mean()) - q) < 2e-3
    assert h.quantile(0.05) == 0.0


def test_teal_recalibrated_measured_sparsity_matches_target_within_one_percent_on_held_out_windows(lm):
    """Calibrate on one set of windows, measure on different windows of the same text (the recalibration
    round is what brings the measured sparsity onto the target; TEAL as published overshoots it)."""
    _, model, blocks = lm
    task = registry.task("lm-smollm2").cls.build(small_lm_params(**HELD_OUT), "test")
    calibration, held_out = task.calibration_windows(0), task.calibration_windows(1)
    assert not {tuple(w) for w in calibration.tolist()} & {tuple(w) for w in held_out.tolist()}
    teal = registry.method("teal-recalibrated").cls.build({"calibration_windows": HELD_OUT["calibration_windows"]},
                                                          "test")
    with torch.no_grad():
        t = calibrate(teal, Calibration(model, blocks, calibration, 4), Target(0.5))
        with ActivationSparsifier(model, blocks, t) as sp:
            for batch in held_out.split(4):
                model(batch, use_cache=False)
    zeros = sp.fractions()
    linears = [name for b in blocks for name in b.linears.values()]
    assert set(t) == set(linears)  # TEAL sparsifies the input of every linear
    assert abs(sum(zeros[n] for n in linears) / len(linears) - 0.5) <= 0.01
    for kind in blocks[0].linears:
        assert abs(sum(zeros[b[kind]] for b in blocks) / len(blocks) - 0.5) <= 0.03, kind


def test_sparsity_zero_gives_bit_identical_dense_outputs(lm, tmp_path):
    task, model, blocks = lm
    ids = task.eval_ids()
    with torch.no_grad():
        dense = model(ids, use_cache=False).logits
        zero = thresholds_of("teal", lm, 0.0)
        zero = {site: torch.zeros(()) for site in zero}
        with ActivationSparsifier(model, blocks, zero) as sp:
            hooked = model(ids, use_cache=False).logits
    assert torch.equal(dense, hooked)
    assert max(sp.fractions().values()) < 0.01  # hardly any natural zeros in SmolLM2's hidden states
    teal0 = run_job(make_job("teal", {"sparsity": 0.0, "pattern": "unstructured"}), tmp_path / "t0.json")
    dense_job = run_job(make_job("dense", {"sparsity": 0.0, "pattern": "unstructured"}), tmp_path / "d.json")
    assert teal0["metrics"]["perplexity"] == dense_job["metrics"]["perplexity"]
    assert teal0["sparsity"]["measured"] < 0.01 and len(teal0["sparsity"]["layers"]) == 30 * 7


def test_teal_thresholds_are_per_layer_shared_by_readers_of_one_tensor_and_deterministic(lm):
    _, _, blocks = lm
    a = thresholds_of("teal", lm, 0.4)
    b = thresholds_of("teal", lm, 0.4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(a[k].dim() == 0 for k in a)  # one threshold per tensor, not per channel
    q = [float(a[blk["q"]]) for blk in blocks]
    assert len(set(q)) == len(blocks)  # a threshold per layer
    for blk in blocks:
        assert float(a[blk["q"]]) == float(a[blk["k"]]) == float(a[blk["v"]])
        assert float(a[blk["gate"]]) == float(a[blk["up"]])
        assert float(a[blk["q"]]) != float(a[blk["o"]])
    higher = thresholds_of("teal", lm, 0.65, refine=0)
    lower = thresholds_of("teal", lm, 0.25, refine=0)
    assert all(float(higher[k]) > float(lower[k]) for k in higher)


def test_chess_thresholds_are_per_channel_in_the_ffn_and_leave_keys_values_dense(lm):
    task, model, blocks = lm
    t = thresholds_of("chess", lm, 0.5)
    for blk in blocks:
        gate = t[blk.gate_act]
        assert gate.shape == (model.config.intermediate_size,)
        assert gate.unique().numel() > 0.9 * gate.numel()  # a threshold per channel
        assert t[blk["q"]].dim() == 0 and t[blk["o"]].dim() == 0
        for kind in ("k", "v", "gate", "up", "down"):
            assert blk[kind] not in t
    with torch.no_grad(), ActivationSparsifier(model, blocks, t) as sp:
        model(task.eval_ids(), use_cache=False)
    zeros = sp.fractions()
    gate_zeros = sum(zeros[b.gate_act] for b in blocks) / len(blocks)
    assert abs(gate_zeros - 0.5) < 0.05
    assert all(zeros[b["down"]] >= zeros[b.gate_act] - 1e-9 for b in blocks)  # act(gate) = 0 -> down input 0
    assert max(zeros[b["k"]] for b in blocks) < 0.01


def test_activation_methods_reject_patterns_they_do_not_support():
    config = {"seeds": [0], "hardware": ["cpu"], "tasks": {"lm-smollm2": small_lm_params()},
              "experiments": {"a": {"tasks": ["lm-smollm2"], "methods": {"teal": {}}, "targets": [{"pattern": "2:4"}]}}}
    with pytest.raises(ConfigError, match=r"pattern='2:4'.*allowed: unstructured"):
        validate_config(config)
    with pytest.raises(ConfigError, match="allocation"):
        registry.method("teal").cls.build({"allocation": "best"}, "methods.teal")


@pytest.mark.parametrize("name,rounds", [("teal", [True]), ("teal-recalibrated", [True, False])])
def test_teal_sets_its_thresholds_on_the_dense_model_only_and_the_recalibrated_variant_once_more(name, rounds, lm):
    _, model, blocks = lm
    method = registry.method(name).cls.build({}, "test")
    seen = []
    original = method.thresholds

    def thresholds(blocks_, calibration, target):
        seen.append(calibration.active is None)  # None: the dense model's activations
        return original(blocks_, calibration, target)

    method.thresholds = thresholds
    task = registry.task("lm-smollm2").cls.build(small_lm_params(**HELD_OUT), "test")
    with torch.no_grad():
        calibrate(method, Calibration(model, blocks, task.calibration_windows(0), 4), Target(0.5))
    assert seen == rounds


@pytest.mark.parametrize("method_name", ["teal", "chess"])
def test_a_cached_dense_calibration_pass_gives_the_thresholds_computing_it_gives(method_name, lm, tmp_path,
                                                                                  monkeypatch):
    from sparsebench.activation import calibration as cal

    monkeypatch.setattr(cal, "CACHE_DIR", tmp_path)
    task, model, blocks = lm
    method = registry.method(method_name).cls.build({}, "test")
    runs = []
    for source in ({}, {"model": "smollm2"}, {"model": "smollm2"}):  # no source: no cache; then stored; then hit
        calib = Calibration(model, blocks, task.calibration_windows(0), task.params.batch_size, source)
        with torch.no_grad():
            runs.append((calibrate(method, calib, Target(0.5)), calib.cache))
    passes = 1 if method_name == "teal" else 2
    assert [r[1] for r in runs] == [[], ["stored"] * passes, ["hit"] * passes]
    for thresholds, _ in runs[1:]:
        assert thresholds.keys() == runs[0][0].keys()
        assert all(torch.equal(thresholds[k], runs[0][0][k]) for k in thresholds)
    # another level reuses the dense pass; other windows do not
    calib = Calibration(model, blocks, task.calibration_windows(0), task.params.batch_size, {"model": "smollm2"})
    with torch.no_grad():
        calibrate(method, calib, Target(0.25))
    assert calib.cache == ["hit"] * passes
    calib = Calibration(model, blocks, task.calibration_windows(1), task.params.batch_size, {"model": "smollm2"})
    with torch.no_grad():
        calibrate(method, calib, Target(0.25))
    assert calib.cache == ["stored"] * passes


def test_sparsify_zeroes_exactly_the_entries_at_or_below_the_threshold():
    from sparsebench.activation.hooks import sparsify

    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(0))
    x[0, 0, :4] = torch.tensor([0.5, -0.5, 0.5000001, 0.0])
    for t in (torch.tensor(0.5), torch.linspace(0.1, 1.5, 16)):  # one threshold; one per channel
        assert torch.equal(sparsify(x, t), torch.where(x.abs() > t, x, torch.zeros(())))
    assert sparsify(x, torch.tensor(0.5))[0, 0, :4].tolist() == [0.0, 0.0, x[0, 0, 2].item(), 0.0]
