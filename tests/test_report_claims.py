"""Claims: validation with clear errors, and verdicts from the interval of the difference: reproduced,
contradicted, inconclusive, invalid, not run."""

import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from sparsebench.claims import load_claims, parse_claim
from sparsebench.errors import ConfigError
from sparsebench.stats import samples_entry
from sparsebench.verdicts import (CONTRADICTED, INCONCLUSIVE, INVALID, NOT_RUN, REPRODUCED, Samples, evaluate,
                                  verdict_of)

WINDOWS = np.random.default_rng(0).normal(2.5, 0.6, 32)  # per-window NLL of the dense model: shared difficulty


def nll(shift: float, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    """A method's per-window NLL: the shared window difficulty plus a consistent shift."""
    return WINDOWS + shift + np.random.default_rng(seed + 100).normal(0, noise, len(WINDOWS))


def rows(*specs):
    """(task, method, label, sparsity, pattern, seed, nll-shift or None) -> summary-like rows and their samples."""
    out, samples = [], {}
    for i, (t, m, lab, s, p, seed, shift) in enumerate(specs):
        rid = f"r{i}"
        values = nll(shift, seed=i)
        out.append({"run_id": rid, "task": t, "family": "pruning", "method": m, "target_label": lab,
                    "target_sparsity": s, "pattern": p, "seed": seed, "hardware": "cpu",
                    "metric.perplexity": math.exp(values.mean())})
        samples[rid] = {"perplexity": samples_entry(values, "window", "exp_mean", [f"w{j}" for j in range(32)])}
    return pd.DataFrame(out), samples


SUMMARY, SAMPLES = rows(
    ("lm-a", "dense", "0%", 0.0, "unstructured", 0, 0.0),
    ("lm-a", "magnitude", "50%", 0.5, "unstructured", 0, 1.0),
    ("lm-a", "wanda", "50%", 0.5, "unstructured", 0, 0.2),
    ("lm-a", "wanda", "2:4", 0.5, "2:4", 0, 0.5),
    ("lm-b", "magnitude", "50%", 0.5, "unstructured", 0, 0.3),
    ("lm-b", "wanda", "50%", 0.5, "unstructured", 0, 0.4),
    ("lm-c", "magnitude", "50%", 0.5, "unstructured", 0, 0.3),
    ("lm-d", "magnitude", "50%", 0.5, "unstructured", 0, 0.3),
    ("lm-d", "wanda", "50%", 0.5, "unstructured", 0, 0.3005),
)


def store(samples=SAMPLES):
    return Samples(lambda row, metric: samples.get(row["run_id"], {}).get(metric))


def judge(c, df=SUMMARY, samples=SAMPLES):
    return evaluate(c, df, samples=store(samples))


def claim(**over):
    raw = {"id": "wanda-beats-magnitude", "paper": "Wanda (arXiv:2306.11695)", "statement": "s",
           "metric": "perplexity", "where": {"family": "pruning"},
           "lhs": {"method": "wanda", "target_label": "50%"}, "op": "<",
           "rhs": {"method": "magnitude", "target_label": "50%"}, "per": "task"}
    raw.update(over)
    return parse_claim({k: v for k, v in raw.items() if v is not None}, "test.yaml[0]")


def test_whole_interval_on_the_claims_side_is_reproduced_and_groups_without_a_side_are_not_run():
    v = judge(claim(where={"task": ["lm-a", "lm-c"]}))
    assert v.status == REPRODUCED
    a, c = v.comparisons
    assert a.group == {"task": "lm-a"} and a.verdict == REPRODUCED and a.diff.hi < 0
    assert a.lhs == pytest.approx(math.exp(nll(0.2, seed=2).mean()))
    assert "paired bootstrap over 32 windows" in a.quantity.method
    assert c.group == {"task": "lm-c"} and c.verdict == NOT_RUN and c.holds is None
    assert "1 not run" in v.reason


def test_whole_interval_on_the_other_side_is_contradicted_and_names_the_numbers():
    v = judge(claim(where={"task": "lm-b"}))
    assert v.status == CONTRADICTED
    (b,) = v.comparisons
    assert b.diff.lo > 0 and b.holds is False
    text = b.describe(v.claim)
    assert "difference +" in text and "95 % CI [" in text and text.endswith("contradicted")


def test_a_difference_inside_its_interval_is_inconclusive():
    v = judge(claim(where={"task": "lm-d"}))  # wanda 0.0005 nats worse, window noise 0.01
    (d,) = v.comparisons
    assert v.status == INCONCLUSIVE and d.diff.lo < 0 < d.diff.hi
    assert judge(claim(op=">", where={"task": "lm-d"})).status == INCONCLUSIVE


def test_a_claim_is_contradicted_if_any_group_is():
    assert judge(claim()).status == CONTRADICTED  # lm-a reproduced, lm-b contradicted, lm-d inconclusive


def test_verdict_reads_the_interval_against_the_threshold():
    assert verdict_of("<", 0, 0, -2, -1) == REPRODUCED
    assert verdict_of("<", 0, 0, -1, 1) == INCONCLUSIVE
    assert verdict_of("<", 0, 0, 0, 1) == CONTRADICTED
    assert verdict_of("<=", 0, 0, -1, 0) == REPRODUCED
    assert verdict_of(">=", 0, 0, 0, 1) == REPRODUCED and verdict_of(">", 0, 0, 0, 1) == INCONCLUSIVE
    assert verdict_of("~=", -0.1, 0.1, -0.05, 0.05) == REPRODUCED
    assert verdict_of("~=", -0.1, 0.1, 0.05, 0.2) == INCONCLUSIVE
    assert verdict_of("~=", -0.1, 0.1, 0.15, 0.2) == CONTRADICTED
    assert verdict_of("<", 0, 0, math.nan, math.nan) == INCONCLUSIVE


def test_tolerance_is_relative_slack_judged_on_the_interval_of_the_relative_difference():
    base = dict(where={"task": "lm-b"})  # wanda ~ +10.5 % perplexity over magnitude (0.1 nats)
    assert judge(claim(tolerance=0.2, **base)).status == REPRODUCED  # whole interval below +20 %
    assert judge(claim(tolerance=0.05, **base)).status == CONTRADICTED  # whole interval above +5 %
    assert judge(claim(tolerance=0.105, **base)).status == INCONCLUSIVE  # straddles +10.5 %
    assert judge(claim(op="~=", tolerance=0.2, **base)).status == REPRODUCED
    assert judge(claim(op="~=", tolerance=0.05, **base)).status == CONTRADICTED
    (b,) = judge(claim(tolerance=0.2, **base)).comparisons
    assert b.relative and b.quantity.estimate == pytest.approx(b.lhs / b.rhs - 1, rel=1e-4)
    assert "relative +10." in b.describe(claim(tolerance=0.2, **base))


def test_seeds_matched_between_sides_give_a_paired_t_interval_of_the_differences():
    df = pd.DataFrame([{"run_id": f"{m}{s}", "task": "digits", "family": "pruning", "method": m,
                        "target_label": "90%", "seed": s, "metric.top1": acc}
                       for m, accs in (("rigl", (97.03, 97.4, 96.9)), ("static", (97.12, 97.2, 97.0)))
                       for s, acc in enumerate(accs)])
    c = claim(metric="top1", lhs={"method": "rigl"}, rhs={"method": "static"}, op=">=", where=None)
    v = judge(c, df, {})
    (g,) = v.comparisons
    assert v.status == INCONCLUSIVE and g.quantity.method == "paired t over seeds over 3"
    from sparsebench.stats import paired_t_interval

    ref = paired_t_interval([97.03, 97.4, 96.9], [97.12, 97.2, 97.0])
    assert (g.diff.lo, g.diff.hi) == pytest.approx((ref.lo, ref.hi))
    shifted = df.assign(**{"metric.top1": df["metric.top1"] + np.where(df["method"] == "rigl", 5.0, 0.0)})
    assert judge(c, shifted, {}).status == REPRODUCED
    unmatched = df.assign(seed=[0, 1, 2, 3, 4, 5])
    (u,) = judge(c, unmatched, {}).comparisons
    assert "Welch" in u.quantity.method and "seeds not matched" in u.note


def test_one_row_per_side_without_samples_has_no_interval_and_is_inconclusive():
    v = judge(claim(where={"task": "lm-b"}), samples={})
    (b,) = v.comparisons
    assert v.status == INCONCLUSIVE and "no interval" in b.note and b.diff.estimate > 0


def test_an_invalid_row_or_a_non_finite_value_makes_the_verdict_invalid():
    df = SUMMARY.assign(status="ok", invalid_reason="")
    df.loc[df["run_id"] == "r2", ["status", "invalid_reason"]] = ["invalid", "perplexity=nan: diverged"]
    v = judge(claim(where={"task": "lm-a"}), df)
    assert v.status == INVALID and "perplexity=nan: diverged" in v.comparisons[0].note
    inf = SUMMARY.copy()
    inf.loc[inf["run_id"] == "r2", "metric.perplexity"] = math.inf
    assert judge(claim(where={"task": "lm-a"}), inf).status == INVALID
    bad = {**SAMPLES, "r2": {"perplexity": {**SAMPLES["r2"]["perplexity"],
                                            "values": [float("nan")] + SAMPLES["r2"]["perplexity"]["values"][1:]}}}
    v = judge(claim(where={"task": "lm-a"}), samples=bad)
    assert v.status == INVALID and "non-finite" in v.comparisons[0].note
    assert judge(claim(), df).status == INVALID  # invalid outranks the other groups' verdicts


def test_a_nan_in_the_summary_is_invalid_when_the_result_file_recorded_it(tmp_path):
    import json

    path = tmp_path / "result.json"
    path.write_text(json.dumps({"metrics": {"perplexity": float("nan")}}))
    df = SUMMARY.copy()
    df["result_path"] = ""
    df.loc[df["run_id"] == "r2", ["metric.perplexity", "result_path"]] = [math.nan, str(path)]
    assert evaluate(claim(where={"task": "lm-a"}), df).status == INVALID
    df.loc[df["run_id"] == "r2", "result_path"] = ""  # not measured for that row: the side has no rows
    assert evaluate(claim(where={"task": "lm-a"}), df).status == NOT_RUN


def test_claim_without_rows_on_one_side_is_not_run():
    v = judge(claim(lhs={"method": "sparsegpt", "target_label": "50%"}))
    assert v.status == NOT_RUN and all(c.holds is None for c in v.comparisons)
    assert judge(claim(metric="accuracy")).status == NOT_RUN  # no such column measured


def test_constant_side_uses_the_interval_of_the_other_side():
    c = claim(lhs={"method": "wanda", "target_sparsity": 0.5, "pattern": "2:4"}, op="<=", rhs={"value": 25},
              per=None)
    v = judge(c)
    (g,) = v.comparisons
    assert v.status == REPRODUCED and g.rhs == 25.0 and g.lhs == pytest.approx(math.exp(nll(0.5, seed=3).mean()))
    assert "bootstrap over 32 windows" in g.quantity.method and "paired" not in g.quantity.method


def test_claim_without_per_compares_all_rows_at_once():
    v = judge(claim(per=None, lhs={"method": "dense"}, rhs={"method": "wanda", "target_label": "2:4"}))
    assert v.status == REPRODUCED and len(v.comparisons) == 1 and v.comparisons[0].lhs_rows == 1


@pytest.mark.parametrize("over, message", [
    ({"op": "<<"}, "op='<<' is not allowed; allowed: <, <=, >, >=, ~="),
    ({"tolerance": -1}, "tolerance=-1"),
    ({"lhs": {"methd": "wanda"}}, "lhs.methd: not a summary column; allowed: task"),
    ({"lhs": {"method": "wanda", "pattern": 124}}, "quote it"),
    ({"rhs": {"value": "two"}}, "a constant side is exactly {value: <number>}"),
    ({"id": "Not Kebab"}, "must be kebab-case"),
    ({"colour": "red"}, "unknown key(s) colour; allowed: id, paper"),
    ({"statement": None}, "missing key(s) statement"),
    ({"lhs": {"value": 1}, "rhs": {"value": 2}}, "both constants"),
])
def test_bad_claim_is_rejected_with_where_what_and_what_is_allowed(over, message):
    with pytest.raises(ConfigError) as err:
        claim(**over)
    assert message in str(err.value) and "test.yaml[0]" in str(err.value)


def test_claim_files_load_in_order_and_ids_must_be_unique(tmp_path):
    entry = textwrap.dedent("""\
        - id: {id}
          paper: "P"
          statement: "S"
          metric: perplexity
          lhs: {{method: wanda, pattern: "2:4"}}
          op: "<"
          rhs: {{method: magnitude}}
        """)
    (tmp_path / "a.yaml").write_text(entry.format(id="first"))
    (tmp_path / "b.yaml").write_text(entry.format(id="second"))
    (tmp_path / "empty.yaml").write_text("")
    assert [c.id for c in load_claims(tmp_path)] == ["first", "second"]
    (tmp_path / "c.yaml").write_text(entry.format(id="first"))
    with pytest.raises(ConfigError, match=r"c.yaml\[0\]: id 'first' is already used by a.yaml\[0\]"):
        load_claims(tmp_path)


def test_unquoted_n_m_pattern_in_a_claim_file_is_caught(tmp_path):
    (tmp_path / "x.yaml").write_text("- {id: x, paper: P, statement: S, metric: perplexity, op: '<',\n"
                                     "   lhs: {method: wanda, pattern: 2:4}, rhs: {method: magnitude}}\n")
    with pytest.raises(ConfigError, match="YAML reads 2:4 unquoted as the number 124"):
        load_claims(tmp_path)


def test_a_claim_file_that_is_not_a_list_is_rejected(tmp_path):
    (tmp_path / "x.yaml").write_text("id: x\n")
    with pytest.raises(ConfigError, match="must be a list of claims"):
        load_claims(tmp_path)


def test_kernel_claims_are_checked_on_the_kernel_suite_rows_per_profile_with_a_t_interval_over_cases(tmp_path):
    import json

    from sparsebench.verdicts import scorecard

    (tmp_path / "kernels").mkdir()
    for profile, speedups in (("h100", [1.3, 1.35, 1.4]), ("cpu", [0.5, 0.55, 0.6])):
        rows_ = [{"op": "semi_structured", "phase": "prefill", "density": 0.5, "status": "ok", "speedup": s}
                 for s in speedups] + [{"op": "semi_structured", "phase": "prefill", "status": "skipped"}]
        (tmp_path / "kernels" / f"{profile}.json").write_text(json.dumps({"profile": profile, "rows": rows_}))
    c = parse_claim({"id": "k", "paper": "P", "statement": "S", "table": "kernels", "metric": "speedup",
                     "lhs": {"op": "semi_structured", "phase": "prefill"}, "op": ">", "rhs": {"value": 1.0},
                     "per": "profile"}, "k.yaml[0]")
    (v,) = scorecard([c], SUMMARY, tmp_path)
    assert v.status == CONTRADICTED
    by = {cmp.group["profile"]: cmp for cmp in v.comparisons}
    assert by["h100"].verdict == REPRODUCED and by["h100"].lhs == pytest.approx(1.35) and by["h100"].lhs_rows == 3
    assert by["cpu"].verdict == CONTRADICTED and "t over rows" in by["cpu"].quantity.method
    (none,) = scorecard([c], SUMMARY, tmp_path / "nowhere")
    assert none.status == NOT_RUN and "no kernels results" in none.reason
    with pytest.raises(ConfigError, match="table='gpu' is not allowed; allowed: summary, kernels"):
        parse_claim({**{"id": "k", "paper": "P", "statement": "S", "metric": "m", "lhs": {"op": "x"}, "op": ">",
                        "rhs": {"value": 1}}, "table": "gpu"}, "k.yaml[0]")


def test_claims_command_prints_numbers_difference_interval_and_verdict(tmp_path, capsys):
    import json

    from sparsebench.cli import main

    df = SUMMARY.copy()
    df["result_path"] = [str(tmp_path / f"{rid}.json") for rid in df["run_id"]]
    for rid, path in zip(df["run_id"], df["result_path"]):
        with open(path, "w") as fh:
            json.dump({"samples": SAMPLES[rid]}, fh)
    df.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "pruning.yaml").write_text(
        "- {id: wanda-beats-magnitude, paper: P, statement: S, metric: perplexity, op: '<', per: task,\n"
        "   lhs: {method: wanda, target_label: '50%'}, rhs: {method: magnitude, target_label: '50%'}}\n")
    args = ["claims", "--results", str(tmp_path), "--claims", str(tmp_path / "claims")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[contradicted] wanda-beats-magnitude" in out
    assert "lm-b: " in out and "[wanda 50%] < " in out and "difference +" in out and "95 % CI [" in out
    assert "paired bootstrap over 32 windows" in out
    assert "0 reproduced, 1 contradicted, 0 inconclusive, 0 invalid, 0 not run" in out
    assert main(args + ["--validate"]) == 0 and "1 claims in" in capsys.readouterr().out


def test_each_side_may_compare_its_own_metric_of_the_same_rows_paired_over_the_same_units():
    df = SUMMARY.assign(**{"metric.perplexity_decode": SUMMARY["metric.perplexity"] * 0.9,
                           "metric.perplexity_prefill": SUMMARY["metric.perplexity"]})
    samples = {rid: {"perplexity_prefill": e["perplexity"],
                     "perplexity_decode": {**e["perplexity"],
                                           "values": [v + math.log(0.9) for v in e["perplexity"]["values"]]}}
               for rid, e in SAMPLES.items()}
    c = claim(lhs={"method": "wanda", "target_label": "50%"}, rhs={"method": "wanda", "target_label": "50%"},
              op="<=", **{"lhs_metric": "perplexity_decode", "rhs_metric": "perplexity_prefill"})
    v = judge(c, df, samples)
    assert v.status == REPRODUCED and [cmp.group["task"] for cmp in v.comparisons] == ["lm-a", "lm-b", "lm-d"]
    a = v.comparisons[0]
    assert a.lhs == pytest.approx(0.9 * a.rhs) and "paired" in a.quantity.method
    assert "perplexity_decode" in a.describe(c)
    assert judge(c).status == NOT_RUN  # neither column measured


def test_every_shipped_claim_still_parses():
    from sparsebench.registry import project_root

    assert len(load_claims(project_root() / "claims")) >= 29


def test_samples_are_found_under_the_results_directory_when_the_summary_paths_are_relative(tmp_path):
    import json

    from sparsebench.verdicts import scorecard

    df = SUMMARY[SUMMARY["task"] == "lm-b"].copy()
    (tmp_path / "runs").mkdir()
    for rid in df["run_id"]:
        (tmp_path / "runs" / f"{rid}.json").write_text(json.dumps({"samples": SAMPLES[rid]}))
    df["result_path"] = [f"results/runs/{rid}.json" for rid in df["run_id"]]  # written from another directory
    (v,) = scorecard([claim()], df, tmp_path)
    assert v.status == CONTRADICTED and "paired bootstrap" in v.comparisons[0].quantity.method
