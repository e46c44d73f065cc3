"""The reference executor: masked dense attention, exact, on any device.

Given the rows a method sparsifies and its keep-mask, it computes the attention
output over the kept keys only (softmax renormalised over them) and, from the
same scores, what the mask cost: kept pairs, causal pairs, and the *recall*
of each row, the share of its dense (causal) attention mass that falls on the
kept keys. Rows are processed in chunks so 4k-token prompts fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class MaskStats:
    """Totals over the calls of one layer in one phase."""

    kept_pairs: int = 0
    causal_pairs: int = 0
    recall_sum: float = 0.0  # sum over (batch, head, row) of the recalled dense mass
    recall_rows: int = 0
    kv_kept: int = 0  # K and V entries left after KV-cache pruning (Mustafar)
    kv_total: int = 0
    tiles_kept: int = 0  # kernel tiles (query tile x key block) holding a kept pair: a block-sparse kernel's work
    tiles_causal: int = 0

    def add(self, other: "MaskStats") -> None:
        self.kept_pairs += other.kept_pairs
        self.causal_pairs += other.causal_pairs
        self.recall_sum += other.recall_sum
        self.recall_rows += other.recall_rows
        self.kv_kept += other.kv_kept
        self.kv_total += other.kv_total
        self.tiles_kept += other.tiles_kept
        self.tiles_causal += other.tiles_causal

    @property
    def pair_density(self) -> float:
        return self.kept_pairs / self.causal_pairs if self.causal_pairs else 1.0

    @property
    def kv_density(self) -> float:
        return self.kv_kept / self.kv_total if self.kv_total else 1.0

    @property
    def density(self) -> float:
        """Share of the dense attention's work kept: kept pairs x kept K/V entries."""
        return self.pair_density * self.kv_density

    @property
    def tile_density(self) -> float:
        return self.tiles_kept / self.tiles_causal if self.tiles_causal else 1.0

    @property
    def recall(self) -> float:
        return self.recall_sum / self.recall_rows if self.recall_rows else 1.0

    def to_dict(self) -> dict:
        return {"density": self.density, "pair_density": self.pair_density, "kv_density": self.kv_density,
                "recall": self.recall, "tile_density": self.tile_density, "kept_pairs": self.kept_pairs,
                "causal_pairs": self.causal_pairs}


def causal_keep(rows: int, keys: int, q0: int, device=None) -> torch.Tensor:
    """(rows, keys) bool: row r (absolute position q0 + r) may see keys 0 .. q0 + r."""
    pos = torch.arange(q0, q0 + rows, device=device)[:, None]
    return torch.arange(keys, device=device)[None, :] <= pos


def dense_attention(q, k, v, scaling: float, q0: int) -> torch.Tensor:
    """Causal attention of rows q0.. over all keys (SDPA); q, k, v are (B, H, *, D) with equal heads."""
    rows, keys = q.shape[2], k.shape[2]
    if q0 == 0 and rows == keys:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_keep(rows, keys, q0, q.device), scale=scaling)


def masked_attention(q, k, v, keep: torch.Tensor, scaling: float, q0: int, recall_stride: int = 8):
    """Attention of rows q0.. restricted to ``keep`` (B, H, rows, keys) and the causal triangle.

    Returns (output (B, H, rows, D), MaskStats). Every row keeps its own
    position even when the mask forgot it, so no row is left without a key.
    The output is exact (SDPA over the boolean mask); recall is computed
    exactly on every ``recall_stride``-th row (and the last), which keeps the
    extra softmax off the hot path while estimating the mean recall closely.
    """
    kept = keep & causal_keep(q.shape[2], k.shape[2], q0, q.device)
    kept.diagonal(offset=q0, dim1=-2, dim2=-1).fill_(True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=kept, scale=scaling)
    return out, mask_stats(q, k, kept, scaling, q0, recall_stride)


def mask_stats(q, k, kept: torch.Tensor, scaling: float, q0: int, recall_stride: int = 8) -> MaskStats:
    """Kept and causal pairs of the causal keep-mask ``kept`` (B, H, rows, keys) and the recall of its rows
    (every ``recall_stride``-th and the last), whichever executor ran it."""
    b, h, rows, _ = q.shape
    keys = k.shape[2]
    causal = causal_keep(rows, keys, q0, q.device)
    stats = MaskStats(kept_pairs=int(torch.count_nonzero(kept)), causal_pairs=int(torch.count_nonzero(causal)) * b * h)
    sample = torch.unique(torch.cat([torch.arange(0, rows, recall_stride), torch.tensor([rows - 1])])).to(q.device)
    scores = torch.matmul(q[:, :, sample], k.transpose(-1, -2)) * scaling
    lse_dense = torch.logsumexp(scores.masked_fill(~causal[sample], float("-inf")), dim=-1)
    lse_kept = torch.logsumexp(scores.masked_fill(~kept[:, :, sample], float("-inf")), dim=-1)
    recall = torch.exp(lse_kept - lse_dense)
    stats.recall_sum = float(recall.double().sum().item())
    stats.recall_rows = recall.numel()
    return stats
