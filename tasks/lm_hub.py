"""lm-hub: any causal LM from the Hugging Face hub on WikiText-2 or C4 (needs a network).

The setup of the SparseGPT and Wanda papers: e.g. ``facebook/opt-125m`` on
WikiText-2 (raw), windows of 2048 tokens. Not in the default config because
this harness runs offline by default; the loaders are tested on local files.
"""

from dataclasses import dataclass
from typing import Literal

from sparsebench.lm import HFDatasetText, HubModel, LanguageModelTask

DATASETS = {
    "wikitext2": HFDatasetText("wikitext", "wikitext-2-raw-v1", "train", "test"),
    "c4": HFDatasetText(
        "allenai/c4",
        None,
        "train",
        "validation",
        data_files={"train": "en/c4-train.00000-of-01024.json.gz", "validation": "en/c4-validation.00000-of-00008.json.gz"},
        join=" ",
    ),
}


class HubLM(LanguageModelTask):
    name = "lm-hub"
    description = "A hub causal LM (default facebook/opt-125m) on WikiText-2 or C4; perplexity"

    @dataclass
    class Params(LanguageModelTask.Params):
        model: str = "facebook/opt-125m"  # hub id or local directory
        revision: str | None = None
        dataset: Literal["wikitext2", "c4"] = "wikitext2"
        window: int = 2048
        eval_windows: int = 40
        calibration_window: int = 2048
        calibration_windows: int = 128

    def model_source(self):
        return HubModel(self.params.model, self.params.revision)

    def text_source(self):
        return DATASETS[self.params.dataset]
