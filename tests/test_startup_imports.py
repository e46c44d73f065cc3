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
