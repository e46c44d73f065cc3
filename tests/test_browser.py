"""Checked as a person would: the report and the MLflow UI in headless Chromium.

Serves the report (python's http.server) and starts ``mlflow server`` on
127.0.0.1 over real CI-sized results, opens both in Debian's Chromium, saves
screenshots (to ``$SPARSEBENCH_SCREENSHOTS`` when set, else a temporary
directory) and asserts what a reader sees: the report's figures and scorecard,
the MLflow runs page listing every run, and the same runs through the REST API.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from report_results import report_results
from sparsebench.cli import main

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
MLFLOW = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True)

CLAIMS = textwrap.dedent("""\
    - id: magnitude-beats-random-at-50
      paper: "Baseline sanity (test claim)"
      statement: "magnitude keeps perplexity below random pruning at 50 %"
      metric: perplexity
      lhs: {method: magnitude, target_label: "50%"}
      op: "<"
      rhs: {method: random, target_label: "50%"}
      per: task
    - id: random-matches-dense
      paper: "A claim that must fail (test claim)"
      statement: "random pruning at 2:4 matches dense within 10 %"
      metric: perplexity
      lhs: {method: random, pattern: "2:4"}
      op: "~="
      rhs: {method: dense}
      tolerance: 0.1
      per: task
    - id: sparsegpt-beats-magnitude-at-50
      paper: "SparseGPT (arXiv:2301.00774)"
      statement: "SparseGPT beats magnitude at 50 % (not in these results)"
      metric: perplexity
      lhs: {method: sparsegpt, target_label: "50%"}
      op: "<"
      rhs: {method: magnitude, target_label: "50%"}
      per: task
    """)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 400, log: Path | None = None) -> None:
    """Until ``url`` answers; MLflow's server takes a minute or more to start on a busy 2-core machine."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{proc.args[:3]} exited with {proc.returncode}\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{url} did not answer within {seconds} s\n{tail}")


def chromium(url: str, profile: Path, screenshot: Path | None = None, size=(1400, 2400), budget_ms=15000) -> str:
    """Open ``url`` headless; return the DOM after scripts ran (and save a screenshot if asked)."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}"]
    dom = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    if screenshot is not None:
        subprocess.run(base + [f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
        assert screenshot.stat().st_size > 10_000, f"{screenshot} is (nearly) empty"
    return dom


def share_of_colour(png: Path, hex_colour: str, tol: float = 0.06) -> float:
    import matplotlib.image

    img = matplotlib.image.imread(png)[..., :3]
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return float((np.abs(img - rgb).max(axis=-1) < tol).mean())


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("SPARSEBENCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    results = tmp_path_factory.mktemp("browser") / "results"
    shutil.copytree(report_results(tmp_path_factory), results)
    claims = results.parent / "claims"
    claims.mkdir()
    (claims / "test.yaml").write_text(CLAIMS)
    reports = results.parent / "reports"
    assert main(["report", "--results", str(results), "--out", str(reports), "--claims", str(claims)]) == 0
    uri = f"sqlite:///{results / 'mlflow.db'}"
    assert main(["track", "--results", str(results), "--reports", str(reports), "--tracking-uri", uri]) == 0
    web_port, ml_port = free_port(), free_port()
    log = results.parent / "mlflow-server.log"
    with open(log, "w") as log_fh:
        procs = [subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                                   "--directory", str(reports)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL),
                 subprocess.Popen([MLFLOW, "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
                                   "--port", str(ml_port), "--workers", "1"], stdout=log_fh, stderr=log_fh)]
    try:
        wait_for(f"http://127.0.0.1:{web_port}/index.html", procs[0])
        wait_for(f"http://127.0.0.1:{ml_port}/health", procs[1], log=log)
        yield {"results": results, "web": f"http://127.0.0.1:{web_port}", "mlflow": f"http://127.0.0.1:{ml_port}",
               "profile": results.parent / "chromium-profile"}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def expected_run_names(results: Path) -> set[str]:
    from sparsebench.results import find_results, read_result

    names = set()
    for p in find_results(results):
        r = read_result(p)
        names.add(f"{r['job']['method']} {r['target_label']} s{r['job']['seed']}")
    return names


def test_report_in_the_browser_shows_its_figures_and_scorecard(served, shots):
    dom = chromium(f"{served['web']}/index.html", served["profile"], shots / "report.png")
    assert "<h2>Claims scorecard</h2>" in dom
    assert "1 reproduced, 1 contradicted, 0 inconclusive, 0 invalid, 1 not run" in dom
    for cls, text in (("ok", "reproduced"), ("fail", "contradicted"), ("skip", "not run")):
        assert f'<span class="badge {cls}">{text}</span>' in dom
    assert 'alt="quality_vs_sparsity_lm-smollm2" src="data:image/png;base64,' in dom
    assert "<h2>Task lm-smollm2</h2>" in dom and "<h2>Environment</h2>" in dom
    # What is on screen: magnitude's red curve (the figure drew) and the green "reproduced" badge.
    assert share_of_colour(shots / "report.png", "#d62728") > 2e-5  # ~70 px of 1400x2400: markers, legend
    assert share_of_colour(shots / "report.png", "#2e7d32") > 1e-5
    # The whole page in one tall shot (headless Chromium paints a scrolled #anchor only in part).
    chromium(f"{served['web']}/index.html", served["profile"], shots / "report-full.png", size=(1400, 4200))


def test_mlflow_rest_api_lists_every_run_with_numbers_and_strings(served):
    base = served["mlflow"]
    exp = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lm-smollm2")["experiment"]
    found = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100,
                                                      "filter": "tags.`sparsebench.kind` = 'result'"})["runs"]
    assert {r["info"]["run_name"] for r in found} == expected_run_names(served["results"])
    for run in found:
        assert all(isinstance(m["value"], (int, float)) for m in run["data"]["metrics"])
        assert all(isinstance(p["value"], str) for p in run["data"]["params"])
    only = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                     "filter": "params.method = 'random' and params.target = '50%'"})
    assert sorted(r["info"]["run_name"] for r in only["runs"]) == ["random 50% s0", "random 50% s1"]
    summary = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                        "filter": "tags.`sparsebench.kind` = 'summary'"})["runs"]
    assert len(summary) == 1
    arts = api(base, f"/api/2.0/mlflow/artifacts/list?run_id={summary[0]['info']['run_id']}&path=report")
    assert "report/index.html" in {f["path"] for f in arts["files"]}


def test_mlflow_runs_page_lists_the_expected_runs(served, shots):
    base = served["mlflow"]
    exp = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lm-smollm2")["experiment"]
    # The address `make ui` prints: the first task's runs in the machine-learning view (MLflow 3 would
    # otherwise open on its GenAI traces).
    from sparsebench.tracking import ui_url

    url = ui_url(f"sqlite:///{served['results'] / 'mlflow.db'}", base)
    assert url == f"{base}/#/experiments/{exp['experiment_id']}/runs?workflowType=machine_learning"
    dom = chromium(url, served["profile"], shots / "mlflow-runs.png", size=(1600, 1000), budget_ms=30000)
    missing = [n for n in expected_run_names(served["results"]) | {"summary (report and figures)"} if n not in dom]
    assert not missing, f"runs page lacks {missing}"
    runs = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                     "filter": "params.target = '50%'"})["runs"]
    ids = json.dumps([r["info"]["run_id"] for r in runs]).replace(" ", "")
    dom = chromium(f"{base}/#/compare-runs?runs={ids}&experiments=[\"{exp['experiment_id']}\"]",
                   served["profile"], shots / "mlflow-compare.png", size=(1600, 1400), budget_ms=30000)
    assert "perplexity" in dom and "measured_sparsity" in dom


def test_mlflow_summary_run_shows_the_report_figures_as_artifacts(served, shots):
    base = served["mlflow"]
    exp = api(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lm-smollm2")["experiment"]
    (summary,) = api(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                           "filter": "tags.`sparsebench.kind` = 'summary'"})["runs"]
    path = "figures/quality_vs_sparsity_lm-smollm2.png"
    with urllib.request.urlopen(f"{base}/get-artifact?path={path}&run_uuid={summary['info']['run_id']}") as resp:
        assert resp.read(8) == b"\x89PNG\r\n\x1a\n"
    dom = chromium(f"{base}/#/experiments/{exp['experiment_id']}/runs/{summary['info']['run_id']}/artifacts/{path}"
                   "?workflowType=machine_learning", served["profile"], shots / "mlflow-summary-artifact.png",
                   size=(1600, 1100), budget_ms=30000)
    assert "summary (report and figures)" in dom and path in dom and "<img" in dom
