"""A bad config is rejected before any job starts, naming the key, the value and what is allowed."""

import copy

import pytest
import yaml

from sparsebench.config import load_config, validate_config
from sparsebench.errors import ConfigError


@pytest.fixture()
def good(root):
    return yaml.safe_load((root / "config" / "ci.yaml").read_text())


def rejected(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, source="config.yaml")
    return str(info.value)


def test_default_and_ci_configs_are_valid(root):
    load_config(root / "config" / "config.yaml")
    load_config(root / "config" / "ci.yaml")


def test_unknown_method_is_named_with_the_allowed_ones(good):
    good["experiments"]["llm-pruning"]["methods"]["magnitud"] = {}
    msg = rejected(good)
    assert "experiments.llm-pruning.methods.magnitud" in msg and "'magnitud'" in msg
    assert "magnitude" in msg and "random" in msg


def test_unknown_task_is_named(good):
    good["tasks"]["lm-nope"] = {}
    msg = rejected(good)
    assert "tasks.lm-nope" in msg and "lm-smollm2" in msg


def test_sparsity_outside_unit_interval_is_rejected(good):
    good["experiments"]["llm-pruning"]["targets"][0] = {"sparsity": 1.5}
    msg = rejected(good)
    assert "experiments.llm-pruning.targets[0].sparsity" in msg and "1.5" in msg


def test_negative_sparsity_is_rejected(good):
    good["experiments"]["llm-pruning"]["targets"][0] = {"sparsity": -0.1}
    assert "-0.1" in rejected(good)


@pytest.mark.parametrize("pattern", ["4:2", "4:4", "0:4"])
def test_nm_pattern_with_n_not_below_m_is_rejected(good, pattern):
    good["experiments"]["llm-pruning"]["targets"][1] = {"pattern": pattern}
    msg = rejected(good)
    assert "targets[1].pattern" in msg and pattern in msg and "N < M" in msg


def test_unknown_pattern_lists_allowed_patterns(good):
    good["experiments"]["llm-pruning"]["targets"][1] = {"pattern": "diagonal"}
    msg = rejected(good)
    assert "'diagonal'" in msg and "unstructured" in msg and "N:M" in msg


def test_unknown_hardware_profile_is_rejected(good):
    good["hardware"] = ["cpu", "tpu-v9"]
    msg = rejected(good)
    assert "hardware[1]" in msg and "tpu-v9" in msg and "cpu" in msg


@pytest.mark.parametrize("key", ["seeds", "hardware", "tasks", "experiments"])
def test_missing_top_level_key_is_named(good, key):
    del good[key]
    msg = rejected(good)
    assert f"missing key {key!r}" in msg


def test_missing_methods_in_experiment_is_named(good):
    del good["experiments"]["llm-pruning"]["methods"]
    assert "missing key 'methods'" in rejected(good)


def test_unknown_method_parameter_is_named(good):
    good["experiments"]["llm-pruning"]["methods"]["magnitude"] = {"alpha": 1}
    msg = rejected(good)
    assert "methods.magnitude" in msg and "alpha" in msg


def test_wrong_type_of_task_parameter_is_named(good):
    good["tasks"]["lm-smollm2"]["window"] = "long"
    msg = rejected(good)
    assert "tasks.lm-smollm2.window='long'" in msg and "int" in msg


def test_unknown_top_level_key_is_named(good):
    good["experimentz"] = {}
    assert "experimentz" in rejected(good)


def test_cli_validate_exits_2_with_the_message(tmp_path, good):
    from sparsebench.cli import main

    bad = copy.deepcopy(good)
    bad["experiments"]["llm-pruning"]["targets"][0] = {"sparsity": 1.5}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["validate", str(path)]) == 2


def test_cli_plan_prints_one_experiments_result_paths_and_names_an_unknown_one(tmp_path, good, capsys):
    from sparsebench.cli import main
    from sparsebench.plan import plan_jobs

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(good))
    name = next(iter(good["experiments"]))
    assert main(["plan", str(path), "--experiment", name, "--paths"]) == 0
    printed = capsys.readouterr().out.split()
    only = {**load_config(path), "experiments": {name: load_config(path)["experiments"][name]}}
    assert printed == [str(j.result_path(only["results_dir"])) for j in plan_jobs(only, only_available=True)]
    assert printed and all(p.endswith("result.json") for p in printed)
    assert main(["plan", str(path), "--experiment", "nope"]) == 2
    assert "--experiment='nope'" in capsys.readouterr().err


def test_experiment_task_params_reach_only_that_experiments_jobs(good):
    from sparsebench.plan import plan_jobs

    good["experiments"]["llm-pruning"]["task_params"] = {"lm-smollm2": {"eval_windows": 3}}
    jobs = plan_jobs(validate_config(good))
    pruning = [j for j in jobs if j.family == "pruning" and j.task == "lm-smollm2"]
    assert pruning and all(j.task_params["eval_windows"] == 3 for j in pruning)
    others = [j for j in jobs if j.task == "lm-smollm2" and j.family != "pruning"]
    assert all(j.task_params["eval_windows"] != 3 for j in others)


def test_experiment_task_params_for_a_task_not_in_the_experiment_is_named(good):
    good["experiments"]["llm-pruning"]["task_params"] = {"vision-digits": {"epochs": 1}}
    msg = rejected(good)
    assert "experiments.llm-pruning.task_params.vision-digits" in msg and "lm-smollm2" in msg


def test_experiment_task_params_bad_value_is_named(good):
    good["experiments"]["llm-pruning"]["task_params"] = {"lm-smollm2": {"zeroshot": ["no-such-task"]}}
    msg = rejected(good)
    assert "experiments.llm-pruning.task_params.lm-smollm2" in msg and "no-such-task" in msg
