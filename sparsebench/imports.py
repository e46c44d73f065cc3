"""Import transformers without the optional packages it loads only for features we never use.

Every job is a fresh process (one Snakemake job each), so import time is paid per
job. transformers imports torchvision (image processors) and scipy (an object
detection loss) whenever they are installed; sparsebench's LM jobs use neither.
transformers looks for such packages with ``importlib.util.find_spec``, which
reports a package whose ``sys.modules`` entry is ``None`` as absent, so hiding them
while its modules load skips those imports (about 1 s of a text model's start).
timm cannot be spared torchvision this way: it imports ``torchvision.ops``
unconditionally.

The hiding lasts only for the import: afterwards the packages import normally for
any code that needs them (lm-eval's metrics, say).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

_UNUSED_BY_TEXT_MODELS = ("torchvision", "scipy")


@contextmanager
def hidden(*names: str):
    """Make the not-yet-imported packages ``names`` look absent inside the block."""
    hid = [n for n in names if n not in sys.modules]
    for n in hid:
        sys.modules[n] = None  # find_spec() -> None, import -> ImportError
    try:
        yield
    finally:
        for n in hid:
            if sys.modules.get(n, 0) is None:
                del sys.modules[n]


def causal_lm_classes():
    """``(AutoModelForCausalLM, AutoTokenizer)``, with the modelling code they pull in loaded."""
    try:
        with hidden(*_UNUSED_BY_TEXT_MODELS):
            import transformers.modeling_utils  # noqa: F401  (the module that imports the hidden ones)
    except ImportError:
        # A transformers release that imports one of them unconditionally (seen: torchvision.io in
        # image_utils): the failed modules left sys.modules, so the import below pays the full cost.
        pass
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM, AutoTokenizer

