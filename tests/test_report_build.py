"""The report: one self-contained page from stored results, sections per task and family,
paper-style tables, figures as PNG and PDF, the claims scorecard, the environment."""

import hashlib
import json
import re
import textwrap

import numpy as np
import pandas as pd
import pytest

from report_results import report_results
from sparsebench.cli import main

CLAIMS = textwrap.dedent("""\
    - id: magnitude-beats-random-at-50
      paper: "test"
      statement: "magnitude keeps perplexity below random at 50 %"
      metric: perplexity
      where: {family: pruning}
      lhs: {method: magnitude, target_label: "50%"}
      op: "<"
      rhs: {method: random, target_label: "50%"}
      per: task
    - id: random-beats-magnitude-at-2-4
      paper: "test"
      statement: "random beats magnitude at 2:4 (false: must show as contradicted)"
      metric: perplexity
      lhs: {method: random, pattern: "2:4"}
      op: "<"
      rhs: {method: magnitude, pattern: "2:4"}
      per: task
    - id: sparsegpt-beats-magnitude-at-50
      paper: "SparseGPT (arXiv:2301.00774)"
      statement: "SparseGPT beats magnitude at 50 %"
      metric: perplexity
      lhs: {method: sparsegpt, target_label: "50%"}
      op: "<"
      rhs: {method: magnitude, target_label: "50%"}
      per: task
    """)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return report_results(tmp_path_factory)


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    claims = tmp_path_factory.mktemp("claims")
    (claims / "test.yaml").write_text(CLAIMS)
    out = tmp_path_factory.mktemp("reports")
    assert main(["report", "--results", str(results), "--out", str(out), "--claims", str(claims)]) == 0
    return out, (out / "index.html").read_text()


def _tree_digest(d):
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_report_is_one_self_contained_page_with_every_figure_also_as_png_and_pdf(report):
    out, page = report
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", page)  # nothing fetched from elsewhere
    assert "<link" not in page and "<script" not in page
    inlined = re.findall(r"<figure id='fig-([^']+)'.*?src='data:image/png;base64,", page)
    assert "quality_vs_sparsity_lm-smollm2" in inlined
    for name in inlined:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_report_has_a_section_per_task_and_family_with_a_paper_style_table(report):
    _, page = report
    section = page[page.index("<section id='task-lm-smollm2'>"):]
    section = section[:section.index("</section>")]
    assert "<h3 id='lm-smollm2-pruning'>pruning</h3>" in section
    table = section[section.index("<table class='paper'>"):section.index("</table>")]
    header = re.findall(r"<th>([^<]*)</th>", table)
    assert header[:3] == ["Sparsity", "Method", "perplexity (↓)"]
    rows = [re.findall(r"<td>(?:<b>)?([^<]*)", r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]]
    # the papers' order: dense, then 50 % unstructured, then 2:4; baselines random before magnitude
    assert [(r[0], r[1]) for r in rows] == [("0% (dense)", "dense"), ("50%", "random"), ("", "magnitude"),
                                            ("2:4", "random"), ("", "magnitude")]
    assert re.fullmatch(r"\S+ \[\S+, \S+\]", rows[1][2])  # mean [95 % interval]
    assert rows[1][-2] == "2" and rows[2][-2] == "1"  # the seeds column


def test_best_value_of_each_sparsity_group_is_bold(report, results):
    _, page = report
    df = pd.read_csv(results / "summary.csv")
    best = df[(df.method != "dense") & (df.pattern == "2:4")].groupby("method")["metric.perplexity"].mean().idxmin()
    table = page[page.index("<table class='paper'>"):]
    group = table[table.index("<td>2:4</td>"):table.index("</tbody>")]
    bold_row = next(r for r in group.split("<tr") if "<b>" in r)
    assert f"<td>{best}</td>" in bold_row


def test_scorecard_marks_each_claim_with_the_numbers_it_compared(report, results):
    out, page = report
    verdicts = {v["id"]: v for v in json.loads((out / "claims.json").read_text())}
    assert verdicts["magnitude-beats-random-at-50"]["status"] == "reproduced"
    assert verdicts["random-beats-magnitude-at-2-4"]["status"] == "contradicted"
    assert verdicts["sparsegpt-beats-magnitude-at-50"]["status"] == "not run"
    df = pd.read_csv(results / "summary.csv")
    mag = df[(df.method == "magnitude") & (df.target_label == "50%")]["metric.perplexity"].mean()
    rnd = df[(df.method == "random") & (df.target_label == "50%")]["metric.perplexity"].mean()
    cmp = verdicts["magnitude-beats-random-at-50"]["comparisons"][0]
    assert cmp["lhs"] == pytest.approx(mag) and cmp["rhs"] == pytest.approx(rnd) and cmp["rhs_rows"] == 2
    card = page[page.index("<section id='claims'>"):]
    card = card[:card.index("</section>")]
    assert "1 reproduced, 1 contradicted, 0 inconclusive, 0 invalid, 1 not run" in card
    assert "paired t over 4 windows" in cmp["interval"]["method"] and cmp["interval"]["hi"] < 0  # few windows: t
    row = card[card.index("id='claim-magnitude-beats-random-at-50'"):]
    assert "<span class='badge ok'>reproduced</span>" in card and f"{mag:.4g}" in row[:row.index("</table>")]


def test_environment_section_names_versions_commit_and_hardware(report, results):
    _, page = report
    env = page[page.index("<section id='environment'>"):]
    first = json.loads(next(results.rglob("result.json")).read_text())["environment"]
    assert f"<th>torch</th><td>{first['packages']['torch']}</td>" in env
    assert first["commit"] in env and "Hardware profiles" in env and "<th>cpu</th>" in env
    assert "eval_tokens_sha256=" in env


def test_report_never_touches_the_results(results, tmp_path, monkeypatch):
    import sparsebench.runner

    def no_runs(*a, **k):
        raise AssertionError("the report ran an experiment")

    monkeypatch.setattr(sparsebench.runner, "run_job", no_runs)
    before = _tree_digest(results)
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "r")]) == 0
    assert _tree_digest(results) == before


def test_figure_option_regenerates_that_figure_alone(results, tmp_path):
    out = tmp_path / "r"
    assert main(["report", "--results", str(results), "--out", str(out),
                 "--figure", "quality_vs_sparsity_lm-smollm2"]) == 0
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["quality_vs_sparsity_lm-smollm2.pdf",
                                                                   "quality_vs_sparsity_lm-smollm2.png"]
    assert not (out / "index.html").exists()
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "b"), "--figure", "pareto"]) == 0


def test_unknown_figure_is_an_error_naming_the_builders(results, tmp_path, capsys):
    assert main(["report", "--results", str(results), "--out", str(tmp_path), "--figure", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is neither a figure builder nor a figure" in err and "quality_vs_sparsity" in err


def test_bad_claims_file_stops_the_report_with_a_clear_error(results, tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.yaml").write_text("- {id: x, paper: P, statement: S, metric: perplexity, op: '=',\n"
                                             "   lhs: {method: a}, rhs: {method: b}}\n")
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "r"), "--claims",
                 str(tmp_path / "c")]) == 2
    assert "bad.yaml[0] (id 'x'): op='=' is not allowed; allowed: <, <=, >, >=, ~=" in capsys.readouterr().err


def test_intervals_are_95_percent_t_over_seeds_else_the_rows_own_interval(results):
    from matplotlib.container import ErrorbarContainer

    from sparsebench.report.figures.pruning import quality_vs_sparsity
    from sparsebench.report.summary import load_summary
    from sparsebench.stats import t_interval

    df = load_summary(results)
    ax = quality_vs_sparsity(df)["quality_vs_sparsity_lm-smollm2"].axes[0]
    rnd = df[(df.method == "random") & (df.target_label == "50%")]["metric.perplexity"]
    t = t_interval(rnd.to_numpy())  # random at 50 %: two seeds
    segments = [seg for c in ax.containers if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments()]
    assert any(list(seg[:, 1]) == pytest.approx([t.lo, t.hi]) for seg in segments)
    one_seed = df[df.seed == 0]  # one result per point: its own interval over the task's windows
    ax = quality_vs_sparsity(one_seed)["quality_vs_sparsity_lm-smollm2"].axes[0]
    mag = one_seed[(one_seed.method == "magnitude") & (one_seed.target_label == "50%")].iloc[0]
    segments = [seg for c in ax.containers if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments()]
    assert any(list(seg[:, 1]) == pytest.approx([mag["ci_lo.perplexity"], mag["ci_hi.perplexity"]]) for seg in segments)


def test_every_method_keeps_one_distinct_style_across_figures():
    from sparsebench.report.style import FIXED, assign_styles, method_style

    names = [f"method{i}" for i in range(40)] + ["dense", "sparsegpt"]
    assign_styles(names)
    styles = [tuple(method_style(n).values()) for n in names]
    assert len(set(styles)) == len(styles)
    assert method_style("dense") == {"color": "#000000", "marker": "o"}
    assert method_style("sparsegpt")["color"] == FIXED["sparsegpt"][0]
    from sparsebench.report import style

    first = sorted(style._assigned)[:len(style.PALETTE)]  # the first 13 others differ in colour too
    assert len({method_style(n)["color"] for n in first}) == len(style.PALETTE)
    assign_styles(["method3"])
    assert tuple(method_style("method3").values()) != tuple(method_style("method4").values())


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    from sparsebench.report.figures.pareto import pareto_mask

    latency = np.array([1.0, 2.0, 3.0, 2.5, 1.0])
    ppl = np.array([30.0, 20.0, 10.0, 25.0, 35.0])  # lower is better
    assert pareto_mask(latency, ppl, higher_better=False).tolist() == [True, True, True, False, False]
    acc = -ppl
    assert pareto_mask(latency, acc, higher_better=True).tolist() == [True, True, True, False, False]


def test_pareto_figure_per_task_and_profile_only_where_latency_was_measured(results):
    from sparsebench.report.figures.pareto import pareto_fronts
    from sparsebench.report.summary import load_summary

    df = load_summary(results)
    assert pareto_fronts(df) == {}  # no latency_ms.<profile> column: nothing drawn
    df["latency_ms.h100"] = 10.0 * (1 - df["target_sparsity"]) + 1.0
    df["latency_ms.cpu"] = np.nan
    figs = pareto_fronts(df)
    assert list(figs) == ["pareto_lm-smollm2_h100"]


def test_a_full_build_removes_figures_of_results_that_are_gone(results, tmp_path):
    from sparsebench.cli import main

    stale = tmp_path / "figures"
    stale.mkdir()
    for name in ("activation_sparsity_lm-gone.png", "activation_sparsity_lm-gone.pdf"):
        (stale / name).write_bytes(b"old")
    (stale / "notes.txt").write_text("not a figure")
    assert main(["report", "--results", str(results), "--out", str(tmp_path)]) == 0
    left = {p.name for p in stale.iterdir()}
    assert "activation_sparsity_lm-gone.png" not in left and "activation_sparsity_lm-gone.pdf" not in left
    assert "notes.txt" in left and "quality_vs_sparsity_lm-smollm2.png" in left
