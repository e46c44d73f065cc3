"""lm-local-long: long-context continuation perplexity of any local checkpoint on any local text, offline.

The task ``lm-smollm2-2k`` runs on a local Hugging Face causal LM (``model``: a
checkpoint directory) and local text (``text``: a .txt, .jsonl or .parquet
file or a directory of them; ``text_field`` for records): the first
``seq_len`` tokens of the first ``sequences`` files (records) of at least
that many tokens, perplexity on the last ``continuation`` tokens, once after
a sparse prompt (prefill) and once with sparse continuation rows (decode);
see ``sparsebench.attention.tasks``. All of ``text`` is evaluation text
(a long-context job calibrates nothing). As in ``lm-local``, the checkpoint's
and the text's content fingerprints (``model_sha256``, ``text_sha256``) are
filled in when the config is read and are part of the run id.
"""

from dataclasses import dataclass

from sparsebench.attention.tasks import LongContextPerplexity
from sparsebench.lm.local import LocalCheckpoint, LocalText, check_checkpoint, check_text, pin_content


@dataclass(frozen=True)
class WholeText(LocalText):
    """Every unit (file, record) of ``path`` is evaluation text."""

    def texts(self, split: str):
        if split != "evaluation":
            raise ValueError(f"split={split!r}: a long-context task reads only 'evaluation' text")
        yield from (text for _, text in self._units(self.path))


class LocalLong(LongContextPerplexity):
    name = "lm-local-long"
    description = "a local causal LM on local text; continuation perplexity, prefill vs decode"

    @dataclass
    class Params(LongContextPerplexity.Params):
        model: str = ""  # local checkpoint directory
        text: str = ""  # evaluation text: a file or a directory of .txt / .jsonl / .parquet
        text_field: str = "text"  # the field of .jsonl records / the column of .parquet files
        model_sha256: str = ""  # filled in from the files' content when the config is read
        text_sha256: str = ""

        def check(self):
            super().check()
            pin_content(self, "model_sha256", check_checkpoint(self.model, "model"))
            pin_content(self, "text_sha256", check_text(self.text, self.text_field, "text"))

    def model_source(self):
        return LocalCheckpoint(self.params.model, self.params.model_sha256)

    def text_source(self):
        p = self.params
        return WholeText(p.text, p.text_field, fingerprint=p.text_sha256)
