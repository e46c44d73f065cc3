"""Intervals: the bootstrap matches closed forms, pairing finds what unpaired intervals miss, NaN never enters."""

import math

import numpy as np
import pytest

from sparsebench import stats


def test_bootstrap_of_a_proportion_matches_the_wilson_interval():
    values = [1.0] * 120 + [0.0] * 280  # 30 % of 400
    ci = stats.bootstrap_ci(values, "mean", "sample")
    lo, hi = stats.wilson_interval(120, 400)
    assert ci.estimate == pytest.approx(0.3)
    assert ci.lo == pytest.approx(lo, abs=0.006) and ci.hi == pytest.approx(hi, abs=0.006)


def test_bootstrap_of_a_mean_matches_the_normal_interval():
    values = np.random.default_rng(0).normal(3.0, 2.0, 800)
    ci = stats.bootstrap_ci(values)
    lo, hi = stats.normal_mean_interval(values)
    half = (hi - lo) / 2
    assert ci.lo == pytest.approx(lo, abs=0.05 * half) and ci.hi == pytest.approx(hi, abs=0.05 * half)


def test_exp_mean_interval_is_the_mean_interval_exponentiated():
    nll = np.random.default_rng(1).normal(2.0, 0.5, 300)
    mean_ci, ppl_ci = stats.bootstrap_ci(nll, "mean"), stats.bootstrap_ci(nll, "exp_mean")
    assert ppl_ci.estimate == pytest.approx(math.exp(nll.mean()))
    assert ppl_ci.lo == pytest.approx(math.exp(mean_ci.lo)) and ppl_ci.hi == pytest.approx(math.exp(mean_ci.hi))


def test_bootstrap_is_reproducible_with_its_fixed_seed():
    values = np.random.default_rng(2).normal(size=50)
    assert stats.bootstrap_ci(values) == stats.bootstrap_ci(values)


def test_paired_bootstrap_finds_a_small_consistent_difference_that_unpaired_intervals_miss():
    rng = np.random.default_rng(3)
    base = rng.normal(2.5, 1.0, 64)  # window difficulty dominates the spread
    a, b = base, base + 0.03 + rng.normal(0, 0.01, 64)  # b is worse on every window by ~0.03
    ia, ib = stats.bootstrap_ci(a), stats.bootstrap_ci(b)
    assert ia.hi > ib.lo  # the intervals of the two overlap: unpaired, nothing is decided
    unpaired = stats.bootstrap_contrast(stats.Side(a[None]), stats.Side(b[None]), paired=False).diff
    assert unpaired.lo < 0 < unpaired.hi
    paired = stats.bootstrap_contrast(stats.Side(a[None]), stats.Side(b[None]), paired=True).diff
    assert paired.hi < 0 and paired.estimate == pytest.approx(a.mean() - b.mean())
    assert "paired" in paired.method


def test_paired_relative_difference_and_constant_side():
    rng = np.random.default_rng(4)
    a = rng.normal(2.0, 0.3, 200)
    c = stats.bootstrap_contrast(stats.Side(a[None], "exp_mean"), stats.Side(constant=5.0), paired=False)
    assert c.rhs == 5.0 and c.rel.estimate == pytest.approx((math.exp(a.mean()) - 5.0) / 5.0)
    alone = stats.bootstrap_ci(a, "exp_mean")
    assert c.diff.lo == pytest.approx(alone.lo - 5.0) and c.diff.hi == pytest.approx(alone.hi - 5.0)


def test_token_units_are_resampled_in_blocks_which_widens_the_interval_of_correlated_values():
    rng = np.random.default_rng(5)
    walk = np.repeat(rng.normal(0, 1, 32), 16) + rng.normal(0, 0.1, 512)  # runs of 16 alike tokens
    iid = stats.bootstrap_ci(walk, "mean", "window")
    blocks = stats.bootstrap_ci(walk, "mean", "token")
    assert "blocks of 16" in blocks.method
    assert (blocks.hi - blocks.lo) > 2 * (iid.hi - iid.lo)


def test_t_intervals_match_their_closed_forms():
    from scipy.stats import t

    x = np.array([97.03, 97.5, 96.8])
    ci = stats.t_interval(x)
    h = t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
    assert (ci.lo, ci.hi) == pytest.approx((x.mean() - h, x.mean() + h))
    y = np.array([97.12, 97.3, 96.9])
    pd_ = stats.paired_t_interval(x, y)
    d = x - y
    hd = t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (pd_.lo, pd_.hi) == pytest.approx((d.mean() - hd, d.mean() + hd))
    w = stats.welch_interval(x, y)
    assert w.estimate == pytest.approx(x.mean() - y.mean()) and w.lo < w.estimate < w.hi
    assert math.isnan(stats.t_interval([1.0]).lo)  # one seed: no interval


def test_t_and_normal_quantiles_equal_scipy_stats_bit_for_bit():
    from scipy.stats import norm, t

    for confidence in (0.9, 0.95, 0.99):
        assert stats.z_quantile(confidence) == float(norm.ppf(0.5 + confidence / 2))
        # integer degrees of freedom (seeds, windows) and Welch's fractional ones
        for df in [*range(1, 64), 1.5, 2.718, 13.37, 1e6]:
            assert stats.t_quantile(df, confidence) == float(t.ppf(0.5 + confidence / 2, df))


def test_a_perplexity_interval_over_few_windows_does_not_import_scipy_stats():
    import subprocess
    import sys

    code = ("import sys\nfrom sparsebench.stats import samples_entry, sample_interval\n"
            "sample_interval(samples_entry([2.1, 2.3, 2.2, 2.6], 'window', 'exp_mean'))\n"
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_never_enter_an_interval(bad):
    with pytest.raises(stats.NonFinite):
        stats.bootstrap_ci([1.0, bad, 2.0])
    with pytest.raises(stats.NonFinite):
        stats.t_interval([1.0, bad])
    with pytest.raises(stats.NonFinite):
        stats.side_of([[1.0, 2.0], [bad, 1.0]], "mean")


def test_summary_interval_columns_come_from_samples_and_skip_invalid_or_non_finite():
    ok = {"status": "ok", "samples": {"accuracy": stats.samples_entry([1, 1, 0, 1], "sample"),
                                     "bad": {"unit": "sample", "statistic": "mean", "values": [1.0, float("nan")]}}}
    cols = stats.interval_columns(ok)
    assert set(cols) == {"ci_lo.accuracy", "ci_hi.accuracy"}
    assert 0 <= cols["ci_lo.accuracy"] <= 0.75 <= cols["ci_hi.accuracy"] <= 1
    assert stats.interval_columns({**ok, "status": "invalid"}) == {}


def test_samples_entry_is_compact_and_checked():
    e = stats.samples_entry([1 / 3, 2.0], "window", "exp_mean", ids=[0, 1])
    assert e == {"unit": "window", "statistic": "exp_mean", "values": [0.333333, 2.0], "ids": ["0", "1"]}
    with pytest.raises(ValueError, match="unit='page'"):
        stats.samples_entry([1.0], "page")
    with pytest.raises(ValueError, match="statistic='median'"):
        stats.check_samples({"values": [1.0], "statistic": "median"}, "samples.x")


def _result(**over):
    job = {"task": "lm-x", "family": "pruning", "method": "wanda", "seed": 0, "hardware": "cpu",
           "target": {"pattern": "unstructured", "sparsity": 0.5}, "method_params": {}, "task_params": {}}
    values = list(np.random.default_rng(6).normal(2.0, 0.3, 32))
    return {"run_id": "abc", "job": job, "status": "ok", "target_label": "50%",
            "metrics": {"perplexity": math.exp(np.mean(values))},
            "samples": {"perplexity": stats.samples_entry(values, "window", "exp_mean")}, **over}


def test_summary_row_and_mlflow_metrics_carry_the_interval_bounds():
    from sparsebench.results import flatten
    from sparsebench.tracking_record import metrics as _metrics

    row = flatten(_result())
    assert row["ci_lo.perplexity"] < row["metric.perplexity"] < row["ci_hi.perplexity"]
    logged = _metrics(_result())
    assert logged["perplexity.ci_lo"] == row["ci_lo.perplexity"] and logged["perplexity.ci_hi"] == row["ci_hi.perplexity"]
    assert "ci_lo.perplexity" not in flatten(_result(status="invalid"))


def test_recording_samples_leaves_run_ids_unchanged():
    from sparsebench.plan import Job

    job = Job("lm-smollm2-2k", "quest", "sparse_attention", {"pattern": "unstructured", "sparsity": 0.9375}, 0, "cpu")
    assert job.run_id == Job.from_spec(job.spec_json()).run_id  # the id hashes the spec only, never outputs


def test_few_units_get_exact_or_t_intervals_not_a_too_narrow_bootstrap():
    ci = stats.bootstrap_ci([1.0, 1.0, 1.0, 0.0], "mean", "sample")  # 3 of 4 passkeys
    assert (ci.lo, ci.hi) == pytest.approx((0.1941, 0.9937), abs=1e-4) and "exact binomial" in ci.method
    quest, streaming = np.array([[1.0, 1.0, 1.0, 0.0]]), np.zeros((1, 4))
    d = stats.bootstrap_contrast(stats.Side(quest, unit="sample"), stats.Side(streaming, unit="sample"), True).diff
    assert d.estimate == 0.75 and d.lo < 0 < d.hi  # 3 discordant pairs cannot decide at 95 %
    many = stats.bootstrap_contrast(stats.Side(np.ones((1, 20))), stats.Side(np.zeros((1, 20))), True).diff
    assert many.lo > 0.5  # 20 of 20 discordant pairs in lhs's favour do
    nll = np.random.default_rng(7).normal(2.0, 0.4, 16)
    t = stats.bootstrap_ci(nll, "exp_mean", "window")  # 16 windows: t on the log scale
    from scipy.stats import t as student

    h = student.ppf(0.975, 15) * nll.std(ddof=1) / 4
    assert (t.lo, t.hi) == pytest.approx((math.exp(nll.mean() - h), math.exp(nll.mean() + h)))
    shift = stats.bootstrap_contrast(stats.Side((nll + 0.1)[None], "exp_mean"), stats.Side(nll[None], "exp_mean"), True)
    assert shift.rel.lo == pytest.approx(math.exp(0.1) - 1) and shift.rel.hi == pytest.approx(math.exp(0.1) - 1)


def test_fractions_per_window_are_never_read_as_binomial_counts():
    ci = stats.bootstrap_ci([1.0] * 16, "mean", "window")  # e.g. non-zero fractions that round to 1
    assert "binomial" not in ci.method and ci.lo == ci.hi == 1.0
    assert "binomial" in stats.bootstrap_ci([1.0] * 16, "mean", "sample").method
