"""Causal language-model tasks: model sources, text sources and perplexity."""

from sparsebench.lm.models import GEMMA3_270M, SMOLLM2_135M, AssembledGGUFPackageModel, GGUFPackageModel, HubModel
from sparsebench.lm.task import LanguageModelTask
from sparsebench.lm.text import HFDatasetText, StdlibText

__all__ = ["GEMMA3_270M", "SMOLLM2_135M", "AssembledGGUFPackageModel", "GGUFPackageModel", "HubModel", "LanguageModelTask", "HFDatasetText", "StdlibText"]
