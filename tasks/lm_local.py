"""lm-local: any local Hugging Face causal-LM checkpoint on any local text, offline.

``model`` is a checkpoint directory (config.json, weights, tokenizer); ``text``
is a .txt, .jsonl or .parquet file or a directory of them (records' ``text_field``
for .jsonl/.parquet). With ``calibration_text`` the calibration windows come
from there (the papers' setup: C4 calibration, WikiText-2 evaluation); without
it, ``text`` is split by file (a directory) or record (one file), ~10 % for
evaluation. Paths are checked when the config is read, before any job runs,
and the content fingerprints (``model_sha256``, ``text_sha256``,
``calibration_sha256``) are filled in then: they are part of the run id, so a
changed checkpoint or text never reuses an old result or cache entry. A job
whose files changed after planning stops with an error instead of running on
other inputs than its id says.
"""

from dataclasses import dataclass

from sparsebench.lm import LanguageModelTask
from sparsebench.lm.local import LocalCheckpoint, LocalText, check_checkpoint, check_text, pin_content


class LocalLM(LanguageModelTask):
    name = "lm-local"
    description = "A local Hugging Face causal LM on local text (offline); perplexity"

    @dataclass
    class Params(LanguageModelTask.Params):
        model: str = ""  # local checkpoint directory
        text: str = ""  # evaluation text (and calibration text without calibration_text)
        calibration_text: str = ""  # optional: a separate calibration source
        text_field: str = "text"  # the field of .jsonl records / the column of .parquet files
        model_sha256: str = ""  # filled in from the files' content when the config is read
        text_sha256: str = ""
        calibration_sha256: str = ""

        def check(self):
            super().check()
            model = check_checkpoint(self.model, "model")
            text = check_text(self.text, self.text_field, "text")
            pin_content(self, "model_sha256", model)
            pin_content(self, "text_sha256", text)
            if self.calibration_text:
                calib = check_text(self.calibration_text, self.text_field, "calibration_text")
                pin_content(self, "calibration_sha256", calib)
            elif self.calibration_sha256:
                raise ValueError("calibration_sha256 is set but calibration_text is empty")

    def model_source(self):
        return LocalCheckpoint(self.params.model, self.params.model_sha256)

    def text_source(self):
        p = self.params
        return LocalText(p.text, p.text_field, p.calibration_text, p.text_sha256, p.calibration_sha256)
