"""CHESS: channel-wise thresholds in the FFN, selective sparsification in attention.

He, Wu, Wen, Xue, Li 2024. "CHESS: Optimizing LLM Inference via Channel-Wise
Thresholding and Selective Sparsification" (arXiv:2409.01366, EMNLP 2024).

Algorithm: in the FFN, sparsify the gate activation a = act(W_gate x) channel by
channel: channel i's importance for the output is |a_i| * E|u_i| (u = W_up x),
so one quantile t of the importance scores over calibration data (fraction p
below it) gives each channel its own threshold t_i = t / E|u_i|, and
``a_i -> a_i * 1[|a_i| > t_i]`` (Sec. 3.2). In attention only the inputs of the
query and output projections are thresholded, one threshold per layer at the
p-quantile of |x|; keys and values stay dense because every later token reads
them from the KV cache (Sec. 3.3, "selective sparsification").

Following the authors' code (github.com/junhuihe-hjh/CHESS,
``CHESS/notebooks/thresholds.py``, ``CHESS/models/llama.py``, method "CHESS+"
= the paper's "CHESS w/"): E|u_i| is the mean over calibration tokens; the
importance threshold is calibrated in a second pass that uses those means; all
statistics come from the dense model. Differences: they average per-sequence
quantiles, we take the quantile over all calibration tokens at once (histogram);
``attention: false`` gives the paper's "CHESS w/o" (FFN only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.families.activation_sparsity import ActivationSparsityMethod
from sparsebench.method import Paper


class CHESS(ActivationSparsityMethod):
    name = "chess"
    display_name = "CHESS"
    paper = Paper("CHESS: Optimizing LLM Inference via Channel-Wise Thresholding and Selective Sparsification",
                  "He, Wu, Wen, Xue, Li", 2024, arxiv="2409.01366")

    @dataclass
    class Params(ActivationSparsityMethod.Params):
        attention: bool = True  # selective sparsification of q_proj and o_proj inputs ("CHESS w/")

    def sites(self, blocks):
        attn = [b[k] for b in blocks for k in ("q", "o")] if self.params.attention else []
        return [b.gate_act for b in blocks] + attn

    def thresholds(self, blocks, calibration, target):
        p = target.sparsity
        # pass 1: E|u_i| per FFN channel, and |x| histograms of the q_proj and o_proj inputs
        attn_taps = {(b[k], "input"): torch.abs for b in blocks for k in ("q", "o")} if self.params.attention else {}
        pass1 = f"chess pass 1: E|up output|, |x| at q, o inputs={self.params.attention}"
        hists, up_mean = calibration.run(histograms=attn_taps,
                                         channel_means={(b["up"], "output"): torch.abs for b in blocks}, key=pass1)
        # pass 2: importance |a_i| * E|u_i| of every gate activation, one distribution per layer
        importance = {(b.gate_act, "output"): (lambda a, m=up_mean[(b["up"], "output")]: a.abs() * m.to(a.dtype))
                      for b in blocks}
        imp_hists, _ = calibration.run(histograms=importance,
                                       key="chess pass 2: |act(gate)| * E|up output| (pass 1's means)")
        t = {}
        for b in blocks:
            e_up = up_mean[(b["up"], "output")].clamp_min(1e-12)
            t[b.gate_act] = imp_hists[(b.gate_act, "output")].quantile(p) / e_up  # t_i = t / E|u_i|
        for tap, hist in hists.items():
            t[tap[0]] = torch.tensor(hist.quantile(p))
        return t
