"""Where activation sparsity acts: the inputs of a decoder block's linear layers.

In a llama-style block every weight matrix reads one of four hidden states
(TEAL, arXiv:2408.14690, Fig. 2; CHESS, arXiv:2409.01366, Sec. 3):

==========  ==================================  ======================
tensor      read by                              name here
==========  ==================================  ======================
attn input  q_proj, k_proj, v_proj               ``<block>.self_attn.q_proj`` ...
attn output o_proj                               ``<block>.self_attn.o_proj``
mlp input   gate_proj, up_proj                   ``<block>.mlp.gate_proj`` ...
mlp hidden  down_proj  (= act(gate) * up)        ``<block>.mlp.down_proj``
==========  ==================================  ======================

plus the gate activation ``act(gate_proj(x))`` (output of ``<block>.mlp.act_fn``),
which CHESS sparsifies: a zero there zeroes the down_proj input entry and makes
the matching up_proj row unnecessary.

A threshold keyed by a linear layer's name sparsifies that layer's *input*; a
threshold keyed by ``<block>.mlp.act_fn`` sparsifies that module's *output*.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

KINDS = ("q", "k", "v", "o", "gate", "up", "down")
_ATTN = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
_MLP = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}


@dataclass(frozen=True)
class Block:
    """One decoder block: the qualified names of its seven linears and its gate activation."""

    index: int
    linears: dict  # kind -> qualified module name
    gate_act: str  # qualified name of mlp.act_fn

    def __getitem__(self, kind: str) -> str:
        return self.linears[kind]


def llama_blocks(model: nn.Module, blocks: nn.ModuleList) -> list[Block]:
    """The blocks of a llama/mistral/qwen-style model, or a clear error for other layouts."""
    prefix = next(name for name, mod in model.named_modules() if mod is blocks)
    out = []
    for i, block in enumerate(blocks):
        attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
        ok = attn is not None and mlp is not None and all(hasattr(attn, a) for a in _ATTN.values()) \
            and all(hasattr(mlp, a) for a in (*_MLP.values(), "act_fn"))
        if not ok:
            raise TypeError(
                f"{prefix}.{i} ({type(block).__name__}): activation sparsity needs a llama-style block "
                "(self_attn.q/k/v/o_proj and a gated mlp.gate/up/down_proj with mlp.act_fn)"
            )
        linears = {k: f"{prefix}.{i}.self_attn.{a}" for k, a in _ATTN.items()}
        linears.update({k: f"{prefix}.{i}.mlp.{a}" for k, a in _MLP.items()})
        out.append(Block(i, linears, f"{prefix}.{i}.mlp.act_fn"))
    return out
