"""Claims: validation with clear errors, and the verdicts reproduced / not reproduced / not run."""

import textwrap

import pandas as pd
import pytest

from sparsebench.claims import NOT_REPRODUCED, NOT_RUN, REPRODUCED, evaluate, load_claims, parse_claim
from sparsebench.errors import ConfigError


def rows(*specs):
    """(task, method, label, sparsity, pattern, seed, ppl) -> summary-like rows."""
    return pd.DataFrame([{"task": t, "family": "pruning", "method": m, "target_label": lab, "target_sparsity": s,
                          "pattern": p, "seed": seed, "hardware": "cpu", "metric.perplexity": ppl}
                         for t, m, lab, s, p, seed, ppl in specs])


SUMMARY = rows(
    ("lm-a", "dense", "0%", 0.0, "unstructured", 0, 10.0),
    ("lm-a", "magnitude", "50%", 0.5, "unstructured", 0, 40.0),
    ("lm-a", "magnitude", "50%", 0.5, "unstructured", 1, 60.0),
    ("lm-a", "wanda", "50%", 0.5, "unstructured", 0, 12.0),
    ("lm-a", "wanda", "2:4", 0.5, "2:4", 0, 20.0),
    ("lm-b", "magnitude", "50%", 0.5, "unstructured", 0, 30.0),
    ("lm-b", "wanda", "50%", 0.5, "unstructured", 0, 35.0),
    ("lm-c", "magnitude", "50%", 0.5, "unstructured", 0, 30.0),
)


def claim(**over):
    raw = {"id": "wanda-beats-magnitude", "paper": "Wanda (arXiv:2306.11695)", "statement": "s",
           "metric": "perplexity", "where": {"family": "pruning"},
           "lhs": {"method": "wanda", "target_label": "50%"}, "op": "<",
           "rhs": {"method": "magnitude", "target_label": "50%"}, "per": "task"}
    raw.update(over)
    return parse_claim({k: v for k, v in raw.items() if v is not None}, "test.yaml[0]")


def test_claim_holding_in_every_group_that_ran_is_reproduced():
    v = evaluate(claim(where={"task": ["lm-a", "lm-c"]}), SUMMARY)
    assert v.status == REPRODUCED
    (a, c) = v.comparisons
    assert a.group == {"task": "lm-a"} and a.lhs == 12.0 and a.rhs == 50.0  # magnitude averaged over two seeds
    assert a.rhs_rows == 2 and a.holds
    assert c.group == {"task": "lm-c"} and c.holds is None  # wanda did not run on lm-c
    assert "1 not run" in v.reason


def test_claim_failing_in_one_group_is_not_reproduced_and_names_the_numbers():
    v = evaluate(claim(), SUMMARY)
    assert v.status == NOT_REPRODUCED
    failing = [c for c in v.comparisons if c.holds is False]
    assert [c.group["task"] for c in failing] == ["lm-b"]
    text = failing[0].describe(v.claim)
    assert "35" in text and "30" in text and "fails" in text


def test_claim_without_rows_on_one_side_is_not_run():
    v = evaluate(claim(lhs={"method": "sparsegpt", "target_label": "50%"}), SUMMARY)
    assert v.status == NOT_RUN and all(c.holds is None for c in v.comparisons)
    assert evaluate(claim(metric="accuracy"), SUMMARY).status == NOT_RUN  # no such column measured


def test_tolerance_is_relative_slack_on_the_right_hand_side():
    base = dict(where={"task": "lm-b"})
    assert evaluate(claim(**base), SUMMARY).status == NOT_REPRODUCED  # 35 < 30 fails
    assert evaluate(claim(tolerance=0.2, **base), SUMMARY).status == REPRODUCED  # 35 < 36
    assert evaluate(claim(op="~=", tolerance=0.1, **base), SUMMARY).status == NOT_REPRODUCED  # |5| > 3
    assert evaluate(claim(op="~=", tolerance=0.2, **base), SUMMARY).status == REPRODUCED
    assert evaluate(claim(op=">=", **base), SUMMARY).status == REPRODUCED


def test_constant_side_and_numeric_selectors():
    c = claim(lhs={"method": "wanda", "target_sparsity": 0.5, "pattern": "2:4"}, op="<=", rhs={"value": 20},
              per=None)
    v = evaluate(c, SUMMARY)
    assert v.status == REPRODUCED and v.comparisons[0].lhs == 20.0


def test_claim_without_per_compares_all_rows_at_once():
    v = evaluate(claim(per=None, lhs={"method": "dense"}, rhs={"method": "wanda"}), SUMMARY)
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


def test_kernel_claims_are_checked_on_the_kernel_suite_rows_per_profile(tmp_path):
    import json

    from sparsebench.claims import scorecard

    (tmp_path / "kernels").mkdir()
    for profile, speedups in (("h100", [1.2, 1.4]), ("cpu", [0.5, 0.7])):
        rows = [{"op": "semi_structured", "phase": "prefill", "density": 0.5, "status": "ok", "speedup": s}
                for s in speedups] + [{"op": "semi_structured", "phase": "prefill", "status": "skipped"}]
        (tmp_path / "kernels" / f"{profile}.json").write_text(json.dumps({"profile": profile, "rows": rows}))
    c = parse_claim({"id": "k", "paper": "P", "statement": "S", "table": "kernels", "metric": "speedup",
                     "lhs": {"op": "semi_structured", "phase": "prefill"}, "op": ">", "rhs": {"value": 1.0},
                     "per": "profile"}, "k.yaml[0]")
    (v,) = scorecard([c], SUMMARY, tmp_path)
    assert v.status == NOT_REPRODUCED
    by = {cmp.group["profile"]: cmp for cmp in v.comparisons}
    assert by["h100"].holds and by["h100"].lhs == pytest.approx(1.3) and by["h100"].lhs_rows == 2
    assert by["cpu"].holds is False
    (none,) = scorecard([c], SUMMARY, tmp_path / "nowhere")
    assert none.status == NOT_RUN and "no kernels results" in none.reason
    with pytest.raises(ConfigError, match="table='gpu' is not allowed; allowed: summary, kernels"):
        parse_claim({**{"id": "k", "paper": "P", "statement": "S", "metric": "m", "lhs": {"op": "x"}, "op": ">",
                        "rhs": {"value": 1}}, "table": "gpu"}, "k.yaml[0]")


def test_claims_command_prints_the_scorecard_and_validates(tmp_path, capsys):
    from sparsebench.cli import main

    SUMMARY.to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "pruning.yaml").write_text(
        "- {id: wanda-beats-magnitude, paper: P, statement: S, metric: perplexity, op: '<', per: task,\n"
        "   lhs: {method: wanda, target_label: '50%'}, rhs: {method: magnitude, target_label: '50%'}}\n")
    args = ["claims", "--results", str(tmp_path), "--claims", str(tmp_path / "claims")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[not reproduced] wanda-beats-magnitude" in out and "lm-b: 35 [wanda 50%] < 30 [magnitude 50%]" in out
    assert "0 reproduced, 1 not reproduced, 0 not run" in out
    assert main(args + ["--validate"]) == 0 and "1 claims in" in capsys.readouterr().out


def test_each_side_may_compare_its_own_metric_of_the_same_rows():
    df = SUMMARY.assign(**{"metric.perplexity_decode": SUMMARY["metric.perplexity"] * 0.9,
                           "metric.perplexity_prefill": SUMMARY["metric.perplexity"]})
    c = claim(lhs={"method": "wanda", "target_label": "50%"}, rhs={"method": "wanda", "target_label": "50%"},
              op="<=", **{"lhs_metric": "perplexity_decode", "rhs_metric": "perplexity_prefill"})
    v = evaluate(c, df)
    assert v.status == REPRODUCED and [cmp.group["task"] for cmp in v.comparisons] == ["lm-a", "lm-b"]
    assert v.comparisons[0].lhs == pytest.approx(10.8) and v.comparisons[0].rhs == 12.0
    assert "perplexity_decode" in v.comparisons[0].describe(c)
    assert evaluate(c, SUMMARY).status == NOT_RUN  # neither column measured
