"""A job's start-up: what it imports (each job is a fresh process), and that the shortcuts change nothing."""

import subprocess
import sys

import numpy as np

from sparsebench.imports import hidden


def test_digits_arrays_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    from sparsebench.vision.data import _digits_arrays

    images, target = _digits_arrays()
    d = load_digits()
    np.testing.assert_array_equal(images, d.images)
    np.testing.assert_array_equal(target, d.target)


def test_hidden_packages_import_again_afterwards():
    code = (
        "import sys, importlib.util\n"
        "from sparsebench.imports import hidden\n"
        "with hidden('sys', 'colorsys'):\n"  # sys is always imported: never hidden
        "    assert importlib.util.find_spec('colorsys') is None\n"
        "    import sys\n"
        "import colorsys\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_hidden_restores_when_the_block_raises():
    try:
        with hidden("colorsys_not_imported_yet"):
            raise RuntimeError
    except RuntimeError:
        pass
    assert "colorsys_not_imported_yet" not in sys.modules


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_digits_data_loads_without_importing_sklearn():
    mods = _modules_after(
        "from sparsebench.vision.data import digits_splits\n"
        "digits_splits()"
    )
    assert "sklearn" not in mods


def test_text_model_classes_load_without_torchvision_or_scipy():
    mods = _modules_after("from sparsebench.imports import causal_lm_classes\ncausal_lm_classes()")
    assert "transformers.modeling_utils" in mods
    assert "torchvision" not in mods and "scipy" not in mods


def test_text_model_classes_still_load_where_transformers_needs_a_hidden_package():
    # safetensors stands in for a package some transformers release imports unconditionally
    mods = _modules_after(
        "import sparsebench.imports as imp\n"
        "imp._UNUSED_BY_TEXT_MODELS = ('safetensors',)\n"
        "cls, tok = imp.causal_lm_classes()\n"
        "assert cls.__name__ == 'AutoModelForCausalLM'"
    )
    assert "transformers.models.auto.modeling_auto" in mods


def test_a_job_imports_only_its_own_familys_engine_and_methods():
    mods = _modules_after(
        "import sparsebench.runner\n"
        "from sparsebench import registry\n"
        "registry.task('lm-smollm2'); registry.method('wanda', family='pruning'); registry.family('pruning')"
    )
    assert "sparsebench.families.pruning" in mods and "sparsebench_methods.pruning.wanda" in mods
    others = ("sparsebench.families.sparse_training", "sparsebench.families.sparse_attention",
              "sparsebench.families.activation_sparsity", "sparsebench_methods.sparse_training",
              "sparsebench_methods.sparse_attention", "sparsebench_methods.activation_sparsity")
    assert not [m for m in mods if m.startswith(others)]


def test_a_job_loads_none_of_the_heavy_libraries_it_never_uses():
    # what `sparsebench run` imports before its model: the CLI, the runner, one family with its methods;
    # mlflow/pandas/matplotlib belong to track/aggregate/report, lm_eval to zero-shot jobs, timm (with
    # torchvision) to vision models, scipy.stats to few-unit intervals of binary metrics only
    heavy = ("mlflow", "pandas", "matplotlib", "lm_eval", "torchvision", "timm", "sklearn", "scipy",
             "snakemake", "jsonschema", "transformers", "datasets", "pyarrow")
    for family, method, task in (("pruning", "wanda", "lm-smollm2"), ("sparse_training", "rigl", "vision-digits"),
                                 ("activation_sparsity", "teal", "lm-smollm2-quick"),
                                 ("sparse_attention", "quest", "lm-smollm2-2k")):
        mods = _modules_after(
            "from sparsebench.cli import build_parser\n"
            "build_parser()\n"
            "import sparsebench.runner\n"
            "from sparsebench import registry\n"
            f"registry.task({task!r}).cls.build({{}}, 't')\n"
            f"registry.method({method!r}, family={family!r}).cls.build({{}}, 'm')\n"
            f"registry.family({family!r})"
        )
        assert not sorted(m for m in mods if m.split(".")[0] in heavy), family


def test_the_run_command_ends_its_process_without_the_interpreters_teardown():
    from sparsebench.cli import build_parser

    assert build_parser().parse_args(["run", "--spec", "{}", "--out", "r.json"]).exit_at_once
    code = ("import atexit\n"
            "atexit.register(lambda: print(' teardown'))\n"
            "print('written', end='')\n"
            "from sparsebench.cli import exit_at_once\n"
            "exit_at_once(3)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (3, "written")


def test_bench_startup_times_every_phase_of_a_job_in_fresh_processes(tmp_path):
    import json

    out = tmp_path / "startup.json"
    proc = subprocess.run([sys.executable, "-m", "sparsebench", "bench", "startup", "--families", "sparse_training",
                           "--repeats", "2", "--config", "config/ci.yaml", "--json", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["job"] == "vision-digits rigl 90%" and len(row["runs"]) == 2
    best = row["min"]
    assert all(best[f"{p}_s"] > 0 for p in ("import", "discovery", "load", "data"))
    for run in row["runs"]:  # the phases split the start-up, which the process's wall time includes
        phases = sum(run[f"{p}_s"] for p in ("import", "discovery", "load", "data"))
        assert abs(run["startup_s"] - phases) < 1e-6 and run["startup_s"] <= run["process_s"]
    assert "sparse_training" in proc.stdout.splitlines()[-1]


def test_bench_startup_names_an_unknown_family():
    proc = subprocess.run([sys.executable, "-m", "sparsebench", "bench", "startup", "--families", "pruning,nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--families: nope unknown; allowed: pruning" in proc.stderr
