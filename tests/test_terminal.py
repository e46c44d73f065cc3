"""What the terminal shows: one line per finished job, progress bars only on a terminal."""

from __future__ import annotations

import io
import json
import logging

from fake_results import write_fake


def _with_samples(path, values):
    from sparsebench.results import write_result
    from sparsebench.stats import samples_entry

    result = json.loads(path.read_text())
    result["samples"] = {"perplexity": samples_entry(values, "window", "exp_mean")}
    write_result(path, result)
    return result


def test_finished_line_names_task_method_target_metric_interval_and_result_path(tmp_path):
    from sparsebench.finish import finished_line
    from sparsebench.stats import interval_columns

    path = write_fake(tmp_path, "magnitude", 0.5, 20.0)
    result = _with_samples(path, [3.0 + 0.01 * i for i in range(40)])
    ci = interval_columns(result)
    line = finished_line(result, path)
    assert line.startswith("done lm-smollm2 magnitude unstructured 50% seed 0 on cpu: perplexity 20")
    assert f"[{ci['ci_lo.perplexity']:.4g}, {ci['ci_hi.perplexity']:.4g}] (95 %)" in line
    assert line.endswith(f"-> {path}") and "\n" not in line


def test_finished_line_of_an_invalid_result_says_invalid_and_why(tmp_path):
    from sparsebench.finish import finished_line

    path = write_fake(tmp_path, "random", 0.5, float("inf"), status="invalid", invalid_reason="perplexity=inf")
    line = finished_line(json.loads(path.read_text().replace("Infinity", "1e999")), path)
    assert line.startswith("INVALID lm-smollm2 random") and "perplexity=inf" in line and str(path) in line


def test_snakemake_finished_run_job_prints_its_line_once_and_other_rules_nothing(tmp_path):
    from snakemake.logging import LogEvent

    from sparsebench.finish import FinishedJobLines

    path = write_fake(tmp_path, "magnitude", 0.5, 20.0)
    out = io.StringIO()
    handler = FinishedJobLines(out)
    log = logging.getLogger("test-finished-lines")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("", extra=dict(event=LogEvent.JOB_INFO, jobid=7, rule_name="run_job", output=[str(path)]))
        log.info("", extra=dict(event=LogEvent.JOB_INFO, jobid=8, rule_name="aggregate", output=["x.csv"]))
        log.info("Finished jobid: 8", extra=dict(event=LogEvent.JOB_FINISHED, job_id=8))
        log.info("Finished jobid: 7", extra=dict(event=LogEvent.JOB_FINISHED, job_id=7))
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("done lm-smollm2 magnitude") and str(path) in lines[0]


def test_progress_bars_are_quiet_when_stderr_is_not_a_terminal(capsys):
    from sparsebench.progress import bars_enabled, progress

    assert not bars_enabled()  # pytest captures stderr: not a tty
    assert list(progress(range(5), desc="windows")) == list(range(5))
    assert capsys.readouterr().err == ""


def test_progress_bars_draw_on_a_terminal(monkeypatch):
    from sparsebench import progress as P

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert P.bars_enabled()
    for _ in P.progress(range(3), desc="windows", unit="window"):
        pass
    assert "windows" in tty.getvalue()
    monkeypatch.setenv("SPARSEBENCH_PROGRESS", "0")
    assert not P.bars_enabled()
