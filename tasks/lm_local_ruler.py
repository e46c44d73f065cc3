"""lm-local-ruler-<kind>-<16k|32k|64k|128k>: the RULER-style long-context suite on a local checkpoint.

The same seven kinds as ``lm-smollm2-ruler-*`` (needle retrieval: single,
multi-key, multi-value, multi-query; variable tracking; common- and
frequent-word extraction), generated deterministically from Python's
documentation prose (``pydoc_data``, ~100k tokens: enough haystack for
128k-token prompts with most tokenizers) at the lengths a long-context model
is evaluated at, on any local Hugging Face causal LM (``model``: a checkpoint
directory, fingerprinted by content into ``model_sha256`` when the config is
read, as ``lm-local`` does). Scored on the model's own greedy answers after a
sparse prompt (prefill) and with sparse answer rows (decode); see
``sparsebench.attention.ruler_task``. ``config/paper/sparse-frontier.yaml``
runs the suite at 16k and 32k on an 8B-class model.
"""

from dataclasses import dataclass, field, make_dataclass

from sparsebench.attention.ruler import KINDS
from sparsebench.attention.ruler_task import RulerTask
from sparsebench.lm import StdlibText
from sparsebench.lm.local import LocalCheckpoint, check_checkpoint, content_sha256

LENGTHS = (16384, 32768, 65536, 131072)


@dataclass
class _LocalRulerParams(RulerTask.Params):
    model: str = ""  # local checkpoint directory
    model_sha256: str = field(default="")  # filled in from the files' content when the config is read

    def check(self):
        super().check()
        path = check_checkpoint(self.model, "model")
        digest = content_sha256(path)
        if self.model_sha256 and self.model_sha256 != digest:
            raise ValueError(f"model_sha256={self.model_sha256!r} but the files at {str(path)!r} now hash to "
                             f"{digest!r}: they changed after this job was planned; plan again")
        self.model_sha256 = digest


class _LocalRuler(RulerTask):
    def model_source(self):
        return LocalCheckpoint(self.params.model, self.params.model_sha256)

    def text_source(self):  # the "code" haystack: the stdlib's evaluation files
        return StdlibText()


def _task(kind: str, seq_len: int) -> type:
    params = make_dataclass("Params", [("seq_len", int, seq_len)], bases=(_LocalRulerParams,))
    label = f"{seq_len // 1024}k"
    name = f"lm-local-ruler-{kind.replace('_', '-')}-{label}"
    return type(f"LocalRuler_{kind}_{label}", (_LocalRuler,), {
        "name": name, "kind": kind, "Params": dataclass(params), "__module__": __name__,
        "description": f"a local checkpoint, RULER {kind} in {seq_len} tokens of Python docs; greedy "
                       "string-match accuracy, prefill vs decode",
    })


for _kind in KINDS:
    for _len in LENGTHS:
        _cls = _task(_kind, _len)
        globals()[_cls.__name__] = _cls
del _cls, _kind, _len
