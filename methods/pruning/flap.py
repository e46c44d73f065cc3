"""FLAP: fluctuation-based adaptive structured pruning -- remove whole heads and MLP channels, compensate with a bias.

An, Zhao, Yu, Tang, Wang 2024, "Fluctuation-based Adaptive Structured Pruning for
Large Language Models" (AAAI 2024, arXiv:2312.11983). On the dense model, each
input channel j of an output projection (attention ``o_proj``, MLP ``down_proj``)
gets the weighted input feature variance WIFV_j = Var(x_j) * ||W_{:,j}||^2 over
the calibration tokens (squared once more for attention, as the authors' code).
Scores are standardised within each layer ((s - mean) / std), a head's score is
the mean over its channels, and one global threshold over all heads and channels
of all blocks (the adaptive "AL-AM" structure) keeps the highest-scoring units
until the kept parameters are closest to (1 - sparsity) of the total. A removed
unit's average contribution W_{:,j} E[x_j] is added to the projection's bias
(baseline bias compensation), and the model is sliced to its kept rows and
columns: a smaller dense model.

Deviation for grouped-query attention (SmolLM2: 9 query heads share 3 key/value
heads): the attention unit is one key/value group (its query heads, its key and
value head and their ``o_proj`` columns), scored by the mean of its query heads'
scores; LLaMA-1 (the paper's model) has one query head per group, where the two
coincide. Every block keeps at least one attention group and one MLP channel
(the authors' code may empty a layer; transformers cannot run an empty one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sparsebench.families.pruning import PruningMethod
from sparsebench.method import Paper
from sparsebench.pruning.structured import StructuredPlan
from sparsebench.targets import Target

PROJ = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def standardise(s: torch.Tensor) -> torch.Tensor:
    return (s - s.mean()) / s.std()


def fluctuation(inputs) -> torch.Tensor:
    """Var(x_j) over all calibration tokens."""
    n = max(inputs.tokens, 1)
    return (inputs.sq_sum / n - (inputs.sum / n) ** 2).clamp_min(0).float()


def _by_suffix(block: dict[str, nn.Module]) -> dict[str, str]:
    found = {}
    for suffix in PROJ:
        names = [n for n in block if n.endswith("." + suffix)]
        if len(names) != 1:
            raise TypeError(f"FLAP needs a llama-style block with {suffix}; found {sorted(block)[:7]}")
        found[suffix] = names[0]
    return found


class FLAP(PruningMethod):
    name = "flap"
    display_name = "FLAP"
    paper = Paper(
        "Fluctuation-based Adaptive Structured Pruning for Large Language Models",
        "An, Zhao, Yu, Tang, Wang",
        2024,
        arxiv="2312.11983",
    )
    patterns = ("channel",)
    needs_calibration = True
    structured = True
    needs_gram = False
    needs_input_moments = True
    uniform_layer_sparsity = False

    @dataclass
    class Params:
        bias: bool = True  # baseline bias compensation (the paper's default)

    def __init__(self, params=None):
        super().__init__(params)
        self._record: dict = {}

    def plan_structure(self, model, blocks, dense_inputs, target: Target) -> StructuredPlan:
        cfg = model.config
        heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        per_group = heads // kv
        names = [_by_suffix(b) for b in blocks]

        attn_scores, mlp_scores = [], []
        for block, n in zip(blocks, names):
            o, down = block[n["self_attn.o_proj"]], block[n["mlp.down_proj"]]
            # statistics stay where calibration ran (the GPU) while offloaded weights are back on the host
            on = dense_inputs[n["self_attn.o_proj"]].sq_sum.device
            wifv_o = fluctuation(dense_inputs[n["self_attn.o_proj"]]) * o.weight.to(on).float().pow(2).sum(0)
            head = standardise(wifv_o**2).reshape(heads, head_dim).mean(1)
            attn_scores.append(head.reshape(kv, per_group).mean(1))  # one score per key/value group
            wifv_d = fluctuation(dense_inputs[n["mlp.down_proj"]]) * down.weight.to(on).float().pow(2).sum(0)
            mlp_scores.append(standardise(wifv_d))

        hidden = blocks[0][names[0]["self_attn.o_proj"]].out_features
        group_params = hidden * head_dim * (2 * per_group + 2)  # q rows + o columns of its heads, k and v rows
        channel_params = 3 * hidden  # gate and up rows, down column
        attn = torch.stack(attn_scores)  # (blocks, kv)
        mlp = torch.stack(mlp_scores)  # (blocks, intermediate)
        scores = torch.cat([attn.flatten(), mlp.flatten()])
        weight = torch.cat([torch.full((attn.numel(),), float(group_params), device=scores.device),
                            torch.full((mlp.numel(),), float(channel_params), device=scores.device)])
        order = torch.sort(scores, descending=True, stable=True).indices
        total = weight.sum()
        cut = int(torch.argmin((torch.cumsum(weight[order], 0) - total * (1 - target.sparsity)).abs()))
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep[order[: cut + 1]] = True
        keep_attn = keep[: attn.numel()].reshape(attn.shape)
        keep_mlp = keep[attn.numel():].reshape(mlp.shape)
        guarded = 0
        for i in range(len(blocks)):  # never empty a block's attention or MLP
            if not keep_attn[i].any():
                keep_attn[i, attn[i].argmax()] = True
                guarded += 1
            if not keep_mlp[i].any():
                keep_mlp[i, mlp[i].argmax()] = True
                guarded += 1
        keep_mlp, extra = self.round_mlp_widths(keep_mlp, mlp)

        plan = StructuredPlan(granularity=float((group_params * (1 + guarded) + channel_params * extra) / total))
        for block, n, ka, km in zip(blocks, names, keep_attn, keep_mlp):
            q_rows = ka.repeat_interleave(per_group * head_dim)
            kv_rows = ka.repeat_interleave(head_dim)
            plan.keep_rows[n["self_attn.q_proj"]] = q_rows
            plan.keep_rows[n["self_attn.k_proj"]] = kv_rows
            plan.keep_rows[n["self_attn.v_proj"]] = kv_rows
            plan.keep_cols[n["self_attn.o_proj"]] = q_rows
            plan.keep_rows[n["mlp.gate_proj"]] = km
            plan.keep_rows[n["mlp.up_proj"]] = km
            plan.keep_cols[n["mlp.down_proj"]] = km
            if self.params.bias:
                for proj, kept in (("self_attn.o_proj", q_rows), ("mlp.down_proj", km)):
                    mean = dense_inputs[n[proj]].sum.float() / max(dense_inputs[n[proj]].tokens, 1)
                    w = block[n[proj]].weight.to(mean.device).float()
                    kept = kept.to(mean.device)
                    plan.bias[n[proj]] = w[:, ~kept] @ mean[~kept]
        self._record = {"kept_attention_groups": keep_attn.sum(1).tolist(), "attention_groups": kv,
                        "kept_mlp_channels": keep_mlp.sum(1).tolist(), "mlp_channels": mlp.shape[1],
                        "guarded_units": guarded}
        return plan

    def round_mlp_widths(self, keep_mlp: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The kept MLP channels per block after any rounding of their counts, and by how many channels the
        total may now sit off the global threshold's (the paper's FLAP: no rounding)."""
        return keep_mlp, 0

    def record(self) -> dict:
        return self._record
