"""Bad input is refused before any job starts, with every problem named: key, value and what is allowed."""

import json

import pytest
import yaml

from conftest import make_job
from fake_results import sparsebench

GOOD = make_job("dense", {"sparsity": 0.0, "pattern": "unstructured"}).spec()


def _spec(**change):
    spec = dict(GOOD)
    for k, v in change.items():
        if v is None:
            spec.pop(k)
        else:
            spec[k] = v
    return json.dumps(spec)


@pytest.mark.parametrize("spec, expected", [
    ("{not json", "--spec: not valid JSON"),
    ("", "--spec: empty"),
    ("[1, 2]", "--spec: a JSON list; expected a JSON object"),
    (_spec(seed=None), "--spec: missing key 'seed'"),
    (_spec(colour="red"), "--spec: unknown key 'colour'"),
    (_spec(seed="0"), "--spec.seed='0'"),
    (_spec(target=0.5), "--spec.target=0.5"),
    (_spec(method="nosuch"), "nosuch"),
    (_spec(task_params={"window": "big"}), "window='big'"),
])
def test_malformed_run_spec_is_one_clear_line_not_a_traceback(tmp_path, spec, expected):
    proc = sparsebench("run", "--spec", spec, "--out", tmp_path / "result.json")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and expected in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "result.json").exists()


def _config(root, tmp_path, edit) -> str:
    cfg = yaml.safe_load((root / "config" / "ci.yaml").read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_validation_reports_every_problem_not_only_the_first(root, tmp_path):
    def edit(cfg):
        cfg["tasks"]["lm-smollm2"]["window"] = 0
        cfg["experiments"]["llm-pruning"]["methods"]["magnitud"] = {}
        cfg["experiments"]["llm-pruning"]["targets"][0]["sparsity"] = 1.5
        cfg["seeds"] = ["zero"]
    proc = sparsebench("validate", _config(root, tmp_path, edit))
    assert proc.returncode == 2
    for expected in ("window=0", "magnitud", "sparsity=1.5", "seeds[0]='zero'"):
        assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize("key, value, expected", [
    ("window", 100000, "window=100000"),
    ("eval_windows", 1000000000, "eval_windows=1000000000"),
])
def test_lm_windows_beyond_the_model_or_the_text_are_refused(root, tmp_path, key, value, expected):
    proc = sparsebench("validate", _config(root, tmp_path, lambda c: c["tasks"]["lm-smollm2"].update({key: value})))
    assert proc.returncode == 2 and expected in proc.stderr and "allowed" in proc.stderr, proc.stderr


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("seeds: [0]\nhardware: [cpu\ntasks: {}\n")
    proc = sparsebench("validate", path)
    assert proc.returncode == 2 and str(path) in proc.stderr and "line 3" in proc.stderr, proc.stderr


def test_report_on_a_missing_results_directory_fails_naming_it(tmp_path):
    proc = sparsebench("report", "--results", tmp_path / "nonexistent", "--out", tmp_path / "reports")
    assert proc.returncode == 2 and "nonexistent" in proc.stderr, proc.stderr
    assert not (tmp_path / "reports" / "index.html").exists()
