"""Causal language-model tasks: model sources, text sources and perplexity."""

from sparsebench.lm.models import SMOLLM2_135M, GGUFPackageModel, HubModel
from sparsebench.lm.task import LanguageModelTask
from sparsebench.lm.text import HFDatasetText, StdlibText

__all__ = ["SMOLLM2_135M", "GGUFPackageModel", "HubModel", "LanguageModelTask", "HFDatasetText", "StdlibText"]
