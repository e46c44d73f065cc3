"""The reference executor: masked dense attention, exact, on any device.

Given the rows a method sparsifies and its keep-mask, it computes the attention
output over the kept keys only (softmax renormalised over them) and, from the
same scores, what the mask cost: kept pairs, causal pairs, and the *recall*
of each row, the share of its dense (causal) attention mass that falls on the
kept keys. Rows are processed in chunks, each over its causal keys only, and a
method's pattern is asked for one chunk's mask at a time: no (rows x keys)
mask of a whole prompt is built (at 2k tokens that is 29 M entries per layer,
and building it cost more than the attention itself). On the CPU a chunk is
128 rows, whose masks stay in cache; on a GPU it is as many rows as a fixed
element budget allows (at 32k tokens a 128-row chunk is too small a kernel, and
256 of them per layer cost more in launches than the attention itself).

The counts stay on the tensors' device until they are read (:meth:`MaskStats.to_dict`),
so a layer's bookkeeping never waits for the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _value(x):
    """A count or sum kept on the device as a 0-dim tensor, read as a Python number."""
    return x.item() if isinstance(x, torch.Tensor) else x


@dataclass
class MaskStats:
    """Totals over the calls of one layer in one phase. ``kept_pairs``, ``recall_sum`` and ``tiles_kept``
    may be 0-dim tensors on the device (int64, float64, int64): read them through the properties or
    :meth:`to_dict`, which bring them to the host once."""

    kept_pairs: int = 0
    causal_pairs: int = 0
    recall_sum: float = 0.0  # sum over (batch, head, row) of the recalled dense mass
    recall_rows: int = 0  # (batch, head, row) units whose recall was computed
    rows_total: int = 0  # (batch, head, row) units of the calls: recall_rows of them were sampled
    kv_kept: int = 0  # K and V entries left after KV-cache pruning (Mustafar)
    kv_total: int = 0
    tiles_kept: int = 0  # kernel tiles (query tile x key block) holding a kept pair: a block-sparse kernel's work
    tiles_causal: int = 0
    dense_layer: bool = False  # a layer the method leaves dense (Quest's first two)

    def add(self, other: "MaskStats") -> None:
        self.kept_pairs += other.kept_pairs
        self.causal_pairs += other.causal_pairs
        self.recall_sum += other.recall_sum
        self.recall_rows += other.recall_rows
        self.rows_total += other.rows_total
        self.kv_kept += other.kv_kept
        self.kv_total += other.kv_total
        self.tiles_kept += other.tiles_kept
        self.tiles_causal += other.tiles_causal
        self.dense_layer |= other.dense_layer

    def on_host(self) -> "MaskStats":
        """The same totals as Python numbers (one device read per tensor)."""
        for name in ("kept_pairs", "recall_sum", "tiles_kept"):
            setattr(self, name, _value(getattr(self, name)))
        return self

    @property
    def pair_density(self) -> float:
        return _value(self.kept_pairs) / self.causal_pairs if self.causal_pairs else 1.0

    @property
    def kv_density(self) -> float:
        return self.kv_kept / self.kv_total if self.kv_total else 1.0

    @property
    def density(self) -> float:
        """Share of the dense attention's work kept: kept pairs x kept K/V entries."""
        return self.pair_density * self.kv_density

    @property
    def tile_density(self) -> float:
        return _value(self.tiles_kept) / self.tiles_causal if self.tiles_causal else 1.0

    @property
    def recall(self) -> float:
        return _value(self.recall_sum) / self.recall_rows if self.recall_rows else 1.0

    def to_dict(self) -> dict:
        self.on_host()
        return {"density": self.density, "pair_density": self.pair_density, "kv_density": self.kv_density,
                "recall": self.recall, "tile_density": self.tile_density, "kept_pairs": self.kept_pairs,
                "causal_pairs": self.causal_pairs, "recall_rows": self.recall_rows, "recall_rows_total": self.rows_total}


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


ROW_CHUNK = 128  # rows per step on the CPU: the masks of a chunk stay in cache (a 2k-token mask is 116 MB as floats)
GPU_CHUNK_ELEMENTS = 1 << 28  # (batch x heads x rows x keys) entries per step on a GPU: 256 MB as a bool mask


def row_chunk(q, keys: int, chunk: int | None = None) -> int:
    """Rows per step: ``chunk`` when given, ROW_CHUNK on the CPU, else as many as GPU_CHUNK_ELEMENTS allows."""
    if chunk is not None:
        return chunk
    if q.device.type == "cpu":
        return ROW_CHUNK
    return max(ROW_CHUNK, GPU_CHUNK_ELEMENTS // max(1, q.shape[0] * q.shape[1] * keys))


def _rows_of(keep):
    """``keep`` as a function of a row range: a pattern's ``token_mask`` or slices of a full mask."""
    if callable(keep):
        return keep
    return lambda r0, r1: keep[:, :, r0:r1]


def _chunk_keep(keep_rows, r0: int, r1: int, q0: int, device) -> torch.Tensor:
    """Rows r0..r1-1 of the causal keep-mask over their causal keys (0 .. q0 + r1 - 1), each row keeping itself."""
    keys = q0 + r1
    kept = keep_rows(r0, r1)[..., :keys] & causal_keep(r1 - r0, keys, q0 + r0, device)
    kept.diagonal(offset=q0 + r0, dim1=-2, dim2=-1).fill_(True)
    return kept


RECALL_STRIDE = 8  # recall is computed on every 8th row (and the last) of a call ...
MAX_RECALL_ROWS = 512  # ... and on at most ~512 rows of a call: at longer calls the stride grows (32k: 64)


def recall_stride_for(rows: int, stride: int = RECALL_STRIDE) -> int:
    """The stride of a call's recall rows: ``stride``, or wider so that at most ~MAX_RECALL_ROWS rows (plus
    the last) are sampled, evenly spread. Up to 4096 rows (every default CPU job) it is ``stride`` itself."""
    return max(stride, -(-rows // MAX_RECALL_ROWS))


def _recall_rows(r0: int, r1: int, rows: int, stride: int, device=None) -> torch.Tensor:
    """The sampled rows (every ``stride``-th, and the last) inside r0..r1-1, relative to r0."""
    every = torch.arange(min(-(-r0 // stride) * stride, r1), r1, stride, device=device)
    if r0 <= rows - 1 < r1 and (rows - 1) % stride:  # the last row, when the stride missed it
        every = torch.cat([every, torch.arange(rows - 1, rows, device=device)])
    return every - r0  # built from ranges, not a boolean selection: no wait for the device


def _recall(q, k, kept: torch.Tensor, sample: torch.Tensor, scaling: float, first: int) -> torch.Tensor:
    """Per sampled row of ``q`` (rows from absolute position ``first``), the share of its dense causal
    softmax mass that falls on the kept keys (``kept``: the mask of all of q's rows)."""
    return _recall_of(q[:, :, sample], k, kept[:, :, sample], first + sample, scaling)


def _recall_of(q_rows, k, kept_rows: torch.Tensor, positions: torch.Tensor, scaling: float) -> torch.Tensor:
    """The recall of query rows ``q_rows`` at absolute ``positions`` whose keep-masks are ``kept_rows``."""
    keys = kept_rows.shape[-1]
    if math.frexp(scaling)[0] == 0.5:  # a power of two (head size 64: 1/8) scales exactly: scale the few
        scores = torch.matmul(q_rows * scaling, k[:, :, :keys].transpose(-1, -2))  # rows, not every score
    else:
        scores = torch.matmul(q_rows, k[:, :, :keys].transpose(-1, -2)).mul_(scaling)
    causal = torch.arange(keys, device=q_rows.device)[None, :] <= positions[:, None]
    # torch.where instead of masked_fill(~mask): the same values without a negated copy of each mask
    minus_inf = torch.full((), float("-inf"), dtype=scores.dtype, device=scores.device)
    lse_dense = torch.logsumexp(torch.where(causal, scores, minus_inf), dim=-1)
    lse_kept = torch.logsumexp(torch.where(kept_rows, scores, minus_inf), dim=-1)
    return torch.exp(lse_kept - lse_dense)


def _chunks(q, k, keep, scaling: float, q0: int, chunk: int | None, recall_stride: int, stats: MaskStats):
    """Yield (r0, r1, kept) per row chunk, counting kept pairs into ``stats`` (on the device, no host read);
    afterwards ``stats`` holds the recall of the sampled rows too."""
    rows = q.shape[2]
    chunk = row_chunk(q, q0 + rows, chunk)
    keep_rows = _rows_of(keep)
    recall_stride = recall_stride_for(rows, recall_stride)
    recall, kept_pairs = [], []
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        kept = _chunk_keep(keep_rows, r0, r1, q0, q.device)
        kept_pairs.append(torch.count_nonzero(kept))
        yield r0, r1, kept
        recall.append(_recall(q[:, :, r0:r1], k, kept, _recall_rows(r0, r1, rows, recall_stride, q.device),
                              scaling, q0 + r0))
    stats.kept_pairs = stats.kept_pairs + torch.stack(kept_pairs).sum()
    _add_recall(stats, recall)


def _add_recall(stats: MaskStats, recall: list) -> None:
    r = torch.cat(recall, dim=-1)
    stats.recall_sum = r.double().sum()
    stats.recall_rows = r.numel()


def masked_attention(q, k, v, keep, scaling: float, q0: int, recall_stride: int = RECALL_STRIDE,
                     chunk: int | None = None):
    """Attention of rows q0.. restricted to ``keep`` and the causal triangle.

    ``keep``: a (B, H, rows, keys) bool mask, or a function ``(r0, r1) -> mask of rows r0..r1-1`` over at
    least their causal keys (a pattern's ``token_mask``), so no full mask is ever built. Returns
    (output (B, H, rows, D), MaskStats). Every row keeps its own position even when the mask forgot it,
    so no row is left without a key. Rows are processed ``chunk`` at a time, each over its causal keys
    only (:func:`row_chunk`); the output is exact (SDPA over an additive mask of the kept keys: -inf elsewhere).
    Recall is computed exactly on every ``recall_stride``-th row (and the last; a wider stride past
    4096 rows, :func:`recall_stride_for`), which keeps the extra softmax off the hot path while
    estimating the mean recall closely.
    """
    b, h, rows, _ = q.shape
    stats = MaskStats(causal_pairs=_causal_pairs(rows, q0) * b * h, rows_total=b * h * rows)
    zero = torch.zeros((), device=q.device, dtype=q.dtype)
    minus_inf = torch.full((), float("-inf"), device=q.device, dtype=q.dtype)
    chunk = row_chunk(q, q0 + rows, chunk)
    buffer = torch.empty(b * h * min(chunk, rows) * (q0 + rows), device=q.device, dtype=q.dtype)
    outs = []
    for r0, r1, kept in _chunks(q, k, keep, scaling, q0, chunk, recall_stride, stats):
        additive = buffer[: kept.numel()].view(kept.shape)  # one buffer: no fresh (page-faulting) mask per chunk
        torch.where(kept, zero, minus_inf, out=additive)
        keys = kept.shape[-1]
        outs.append(F.scaled_dot_product_attention(q[:, :, r0:r1], k[:, :, :keys], v[:, :, :keys],
                                                   attn_mask=additive, scale=scaling))
    return torch.cat(outs, dim=2), stats


def mask_stats(q, k, keep, scaling: float, q0: int, recall_stride: int = RECALL_STRIDE,
               chunk: int | None = None) -> MaskStats:
    """Kept and causal pairs of the causal keep-mask ``keep`` and the recall of its sampled rows (every
    ``recall_stride``-th and the last; :func:`recall_stride_for`), whichever executor ran it.

    ``keep``: a pattern (``sparsebench.attention.pattern``): kept pairs are counted exactly from its
    blocks or lines (:meth:`kept_pairs`) and only the sampled rows' masks are built (:meth:`row_mask`),
    so a 32k-token call never builds its 32k x 32k mask; or, as in :func:`masked_attention`, a mask or a
    function of a row range, whose every row is built and counted. Both give the same numbers: the same
    rows, chunked alike on the CPU (so the very same float operations). On CUDA a block pattern's recall is
    one fused kernel over the sampled rows (:func:`fused_recall`; equal to float tolerance).
    """
    b, h, rows, _ = q.shape
    stats = MaskStats(causal_pairs=_causal_pairs(rows, q0) * b * h, rows_total=b * h * rows)
    if not hasattr(keep, "kept_pairs"):
        for _ in _chunks(q, k, keep, scaling, q0, chunk, recall_stride, stats):
            pass
        return stats
    stats.kept_pairs = keep.kept_pairs()
    stride = recall_stride_for(rows, recall_stride)
    if fused_recall(q, keep) and chunk is None:
        from sparsebench.attention.fused import block_pattern_recall

        sample = _recall_rows(0, rows, rows, stride, q.device)  # the rows any chunking samples
        _add_recall(stats, [block_pattern_recall(keep, q[:, :, sample], k, sample, scaling)])
        return stats
    step = recall_chunk(q, q0 + rows, stride, chunk)
    recall = []
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        sample = _recall_rows(r0, r1, rows, stride, q.device)
        if not len(sample):
            continue
        positions = q0 + r0 + sample
        keys = q0 + r1  # the chunk's causal keys, as the row-range path has them
        # a pattern's row mask is causal already; every row keeps itself, set in place (B x H x rows entries,
        # not another pass over the rows x keys mask)
        kept = keep.row_mask(r0 + sample, keys).to(q.device)
        # (the value a device tensor: a Python True is copied to the device with a blocking copy that waits
        # for the stream, once a call)
        kept[:, :, torch.arange(len(sample), device=q.device), positions] = torch.ones((), dtype=torch.bool,
                                                                                       device=kept.device)
        recall.append(_recall_of(q[:, :, r0:r1][:, :, sample], k, kept, positions, scaling))
    _add_recall(stats, recall)
    return stats


def fused_recall(q, keep) -> bool:
    """Whether :func:`mask_stats` computes the recall in one fused kernel (sparsebench.attention.fused): on
    CUDA, for a block pattern, at a head size the kernel takes. Elsewhere (the CPU: every default job) the
    eager formula in row chunks, whose floats the CPU results are."""
    from sparsebench.attention.pattern import BlockPattern

    if not q.is_cuda or not isinstance(keep, BlockPattern):
        return False
    from sparsebench.attention.fused import fits

    return fits(q)


def recall_chunk(q, keys: int, stride: int, chunk: int | None = None) -> int:
    """Rows per recall step of :func:`mask_stats` on a pattern: ``chunk`` when given; on the CPU ROW_CHUNK
    at the default stride (the row-range path's chunks), wider with the stride (16 sampled rows a step);
    on a GPU as many rows as GPU_CHUNK_ELEMENTS allows for their sampled rows (32k tokens: one step)."""
    if chunk is not None:
        return chunk
    if q.device.type == "cpu":
        return ROW_CHUNK * stride // RECALL_STRIDE
    return stride * max(ROW_CHUNK // RECALL_STRIDE, GPU_CHUNK_ELEMENTS // max(1, q.shape[0] * q.shape[1] * keys))


def _causal_pairs(rows: int, q0: int) -> int:
    """Causal pairs of rows q0 .. q0 + rows - 1 (row i sees i + 1 keys)."""
    return rows * q0 + rows * (rows + 1) // 2
