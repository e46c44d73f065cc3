"""mlp-activation-stats: how sparse the MLP activations are by themselves (an analysis: the model is unchanged).

Li, You, Bhojanapalli, Li, Rawat, Reddi, Ye, Chern, Yu, Guo, Kumar 2022. "The Lazy
Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers"
(arXiv:2210.06313, ICLR 2023).

Measure (Sec. 2): the activation map is the output of the MLP's activation
function, and its sparsity is the percentage of non-zero entries for each input
token, averaged over tokens, per layer: 3.0 % for T5-Base and 6.3 % for ViT-B16,
both trained with ReLU.

Here, per decoder block on the task's evaluation windows (the same forward that
scores perplexity, so the perplexity is the dense model's), at the output of
``mlp.act_fn``:

- ``nonzero``: fraction of entries != 0, the paper's measure;
- ``positive``: fraction of entries > 0. For ReLU the same as ``nonzero``; for
  SiLU (SmolLM2's gated MLP) the fraction of positive gate pre-activations, i.e.
  the non-zero fraction a ReLU in SiLU's place would leave;
- ``above``: fraction with magnitude above each of ``magnitudes``.

SiLU is not ReLU: its negative branch is small but not zero (silu(-10) = -4.5e-4),
so exact zeros are essentially absent and the paper's number cannot be read off a
SiLU model directly; ``positive`` and ``above`` say how close it comes. The model-wide
values (mean over blocks) are added to the metrics as ``mlp_nonzero_fraction``,
``mlp_positive_fraction`` and ``mlp_above_<m>_fraction`` (``0.01`` written ``0p01``:
a dot would make a claim read it as a column name); per block they are stored
under ``extra.activation.method.layers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sparsebench.activation.stats import OutputCounter
from sparsebench.families.activation_sparsity import ActivationSparsityMethod
from sparsebench.method import Paper


class MLPActivationStats(ActivationSparsityMethod):
    name = "mlp-activation-stats"
    reference = True  # an analysis of the unchanged model: runs once per task and seed
    paper = Paper("The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers",
                  "Li, You, Bhojanapalli, Li, Rawat, Reddi, Ye, Chern, Yu, Guo, Kumar", 2022, arxiv="2210.06313")

    @dataclass
    class Params:
        magnitudes: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1])  # "near zero" below these

        def check(self):
            if any(m <= 0 for m in self.magnitudes):
                raise ValueError(f"magnitudes={self.magnitudes} must all be > 0")

    def __init__(self, params=None):
        super().__init__(params)
        self.counter: OutputCounter | None = None
        self.blocks = []

    def sites(self, blocks):
        return []  # nothing is thresholded

    def thresholds(self, blocks, calibration, target):
        raise ValueError(f"{self.name} is an analysis of the unchanged model; it has no sparsity target")

    def watch(self, model, blocks):
        self.blocks = blocks
        self.counter = OutputCounter(model, [b.gate_act for b in blocks], self.params.magnitudes)
        return self.counter

    def _per_layer(self) -> list[dict]:
        stats = self.counter.fractions()
        return [{"block": b.index, **stats[b.gate_act]} for b in self.blocks]

    def record(self) -> dict:
        if self.counter is None:
            return {}
        return {"measured_at": "mlp.act_fn output", "layers": self._per_layer()}

    def samples(self) -> dict:
        """Per evaluation window: the non-zero and positive fractions averaged over blocks (their mean over
        windows is the metric), so claims on these fractions get an interval."""
        if self.counter is None:
            return {}
        from sparsebench.stats import samples_entry

        out = {}
        for kind in ("nonzero", "positive"):
            values = self.counter.row_fractions(kind)
            out[f"mlp_{kind}_fraction"] = samples_entry(values, "window", "mean", [f"w{i}" for i in range(len(values))])
        return out

    def metrics(self) -> dict[str, float]:
        if self.counter is None:
            return {}
        layers = self._per_layer()
        mean = lambda f: sum(f(lay) for lay in layers) / len(layers)  # noqa: E731
        out = {"mlp_nonzero_fraction": mean(lambda lay: lay["nonzero"]),
               "mlp_positive_fraction": mean(lambda lay: lay["positive"])}
        for m in self.params.magnitudes:
            out[f"mlp_above_{m:g}_fraction".replace(".", "p")] = mean(lambda lay, m=m: lay["above"][f"{m:g}"])
        return out
