"""lm-smollm2-2k / lm-smollm2-4k: long-context perplexity of SmolLM2-135M-Instruct for sparse attention.

The model (context 8192) reads the first 2048 / 4096 tokens of whole CPython
stdlib evaluation files; perplexity is taken on the last ``continuation``
tokens, once after a sparse prompt (prefill) and once with sparse
continuation rows over a dense prompt (decode); see
``sparsebench.attention.tasks`` and ``sparsebench.families.sparse_attention``.
"""

from dataclasses import dataclass

from sparsebench.attention.tasks import LongContextPerplexity
from sparsebench.lm import SMOLLM2_135M, StdlibText


class _SmolLM2Long(LongContextPerplexity):
    def model_source(self):
        return SMOLLM2_135M

    def text_source(self):
        return StdlibText()


class SmolLM2Long2k(_SmolLM2Long):
    name = "lm-smollm2-2k"
    description = "SmolLM2-135M-Instruct, 2048-token stdlib files; continuation perplexity, prefill vs decode"

    @dataclass
    class Params(LongContextPerplexity.Params):
        seq_len: int = 2048
        continuation: int = 256


class SmolLM2Long4k(_SmolLM2Long):
    name = "lm-smollm2-4k"
    description = "SmolLM2-135M-Instruct, 4096-token stdlib files; continuation perplexity, prefill vs decode"

    @dataclass
    class Params(LongContextPerplexity.Params):
        seq_len: int = 4096
        continuation: int = 512
