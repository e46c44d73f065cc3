"""What a sparse-attention method decided, kept at the granularity it decided at.

A method's :meth:`decide` returns a pattern; the executors take it from there:
the reference executor asks for the token keep-mask (:meth:`token_mask`),
the FlexAttention executor for its tiles (:meth:`tiles`), a (query tile x key
block) table computed from the block-level decision itself (never by pooling
a token mask), plus an exact per-token rule (:meth:`mask_mod`) that the kernel
evaluates inside the tiles it does not keep whole.

- :class:`BlockPattern`: each row group (a query block in prefill, one row in
  decode) keeps whole key blocks (``blocks``), and every row keeps the keys
  from ``local_start`` up to itself (its diagonal tile, a sliding window) and
  the first ``sinks`` keys. Covers windows, StreamingLLM, Quest, SpargeAttn,
  NSA and full attention.
- :class:`LinePattern`: vertical lines (key j for every row) and slash lines
  (offset i - j) per head: MInference's vertical-slash, token-level.

Every row also keeps itself (as the reference executor does), and causality
applies on top of every pattern.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

import torch

from sparsebench.attention.budget import Budget


def _pad_to(x: torch.Tensor, size: int, dim: int, value) -> torch.Tensor:
    """Pad ``x`` along ``dim`` to ``size`` with ``value`` (lookup tables must cover the kernel's padded tiles)."""
    missing = size - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype, device=x.device)], dim=dim)


_DERIVED: dict = {}  # id(tensor) -> (a weak reference to it, {key: a table derived from it})


def _derived(tensor: torch.Tensor, key, make):
    """``make()``, computed once per (``tensor``, ``key``) while ``tensor`` lives (by identity). A method's plan
    gives every layer of a forward the same local-start tensor (Quest's regions), so what depends on it alone
    (the clipped starts, the local and sink tiles, the per-row pair counts) is built once per forward shape,
    not per layer: tens of kernel launches a call fewer. Read only; ``make()`` must return new tensors (a
    value holding ``tensor`` itself would keep it alive)."""
    slot = _DERIVED.get(id(tensor))
    if slot is None or slot[0]() is not tensor:
        slot = _DERIVED[id(tensor)] = (weakref.ref(tensor, lambda _, i=id(tensor), d=_DERIVED: d.pop(i, None)), {})
    if key not in slot[1]:
        slot[1][key] = make()
    return slot[1][key]


@functools.lru_cache(maxsize=64)
def _causal_tile_count(tiling: "Tiling") -> int:
    return int(tiling.causal_tiles()[0].sum())


@dataclass(frozen=True)
class Tiling:
    """The kernel's grid: ``q_tile`` query rows by ``kv_block`` keys."""

    budget: Budget
    q_tile: int
    kv_block: int

    @property
    def n_q(self) -> int:
        return -(-self.budget.rows // self.q_tile)

    @property
    def n_kv(self) -> int:
        return -(-self.budget.keys // self.kv_block)

    def row_span(self, device=None):
        """First and last absolute position of every query tile: (n_q,), (n_q,) (shared per grid and device:
        read only)."""
        return _grid_tables(self, str(device) if device is not None else "cpu")[0]

    def key_span(self, device=None):
        """First and last key of every key block: (n_kv,), (n_kv,) (shared per grid and device: read only)."""
        return _grid_tables(self, str(device) if device is not None else "cpu")[1]

    def causal_tiles(self, device=None):
        """(n_q, n_kv): tiles holding any causal pair, and tiles wholly causal and wholly inside the sequence
        (a ragged last tile is never passed as full: the mask_mod then decides its padding too). Shared per
        grid and device (every layer of a forward asks for the same): read only."""
        return _grid_tables(self, str(device) if device is not None else "cpu")[2]

    def _row_span(self, device=None):
        t = torch.arange(self.n_q, device=device)
        first = self.budget.q0 + t * self.q_tile
        last = self.budget.q0 + torch.clamp((t + 1) * self.q_tile, max=self.budget.rows) - 1
        return first, last

    def _key_span(self, device=None):
        kb = torch.arange(self.n_kv, device=device)
        return kb * self.kv_block, torch.clamp((kb + 1) * self.kv_block, max=self.budget.keys) - 1

    def causal_tile_count(self) -> int:
        """Tiles holding any causal pair (per batch and head); computed once per grid (every layer asks)."""
        return _causal_tile_count(self)

    def _causal_tiles(self, device=None):
        q_first, q_last = self._row_span(device)
        k_first, k_last = self._key_span(device)
        t = torch.arange(self.n_q, device=device)
        kb = torch.arange(self.n_kv, device=device)
        inside = (((t + 1) * self.q_tile <= self.budget.rows)[:, None]
                  & ((kb + 1) * self.kv_block <= self.budget.keys)[None, :])
        return k_first[None, :] <= q_last[:, None], (k_last[None, :] <= q_first[:, None]) & inside


@functools.lru_cache(maxsize=64)
def _grid_tables(tiling: Tiling, device: str):
    """A grid's row spans, key spans and causal tiles on ``device``, built once: the layers of a forward
    share them (tens of small kernel launches a call fewer)."""
    return tiling._row_span(device), tiling._key_span(device), tiling._causal_tiles(device)


class _TileCache:
    """A pattern's tile tables, computed once per tiling: the BlockMask and the job's tile counts share them."""

    def tiles(self, tiling: Tiling):
        """(B, H, n_q, n_kv) bool tables: tiles with any kept pair, and tiles kept whole."""
        cached = self.__dict__.get("_tiles")
        if cached is None or cached[0] != tiling:
            cached = self.__dict__["_tiles"] = (tiling, self._tiles(tiling))
        return cached[1]


@dataclass
class BlockPattern(_TileCache):
    """keep(i, j) = j <= i and (blocks[group(i), j // block] or local_start[i] <= j or j < sinks or j == i)."""

    budget: Budget
    block: int  # key block of ``blocks`` (and the kernel's key block)
    batch: int
    heads: int
    blocks: torch.Tensor | None = None  # (B, H, groups, key_blocks) bool; None: no whole blocks
    local_start: torch.Tensor | None = None  # (rows,) long; None: only the row itself
    sinks: int = 0

    def __post_init__(self):
        dev = self.blocks.device if self.blocks is not None else getattr(self.local_start, "device", None)
        b = self.budget

        def clipped(start=None):  # a row always keeps itself
            pos = torch.arange(b.q0, b.q0 + b.rows, device=dev)
            return pos if start is None else torch.minimum(start, pos)
        if self.local_start is None:
            self.local_start = clipped()
        else:
            start = self.local_start.to(dev)
            self.local_start = _derived(start, ("clipped", b.q0, b.rows), lambda: clipped(start))

    @property
    def group(self) -> int:
        return self.budget.row_block

    def _device(self):
        return self.blocks.device if self.blocks is not None else self.local_start.device

    def token_mask(self, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """(B, H, rows, keys) bool, causal (the reference executor's input); rows ``r0 .. r1 - 1`` only
        (over their causal keys, 0 .. q0 + r1 - 1) when a range is given."""
        b, dev = self.budget, self._device()
        r1 = b.rows if r1 is None else min(r1, b.rows)
        keys = b.q0 + r1
        i = torch.arange(b.q0 + r0, b.q0 + r1, device=dev)[:, None]
        j = torch.arange(keys, device=dev)[None, :]
        keep = (j >= self.local_start.to(dev)[r0:r1, None]) | (j < self.sinks)
        keep = keep.expand(self.batch, self.heads, -1, -1)
        if self.blocks is not None:
            g = self.group
            first = r0 // g  # the groups holding rows r0 .. r1 - 1
            groups = self.blocks[:, :, first : -(-r1 // g), : -(-keys // self.block)]
            per_row = groups.repeat_interleave(g, dim=-2)[..., r0 - first * g : r1 - first * g, :]
            keep = keep | per_row.repeat_interleave(self.block, dim=-1)[..., :keys]
        return keep & (j <= i)

    def row_mask(self, rows: torch.Tensor, keys: int) -> torch.Tensor:
        """(B, H, len(rows), keys) bool, causal: the rows ``rows`` (indices into this call's rows, any order)
        of :meth:`token_mask` over keys 0 .. keys - 1, without building the rows in between."""
        b, dev = self.budget, self._device()
        rows = rows.to(dev)
        i = (b.q0 + rows)[:, None]
        j = torch.arange(keys, device=dev)[None, :]
        keep = ((j >= self.local_start.to(dev)[rows][:, None]) | (j < self.sinks)).expand(self.batch, self.heads, -1, -1)
        if self.blocks is not None:
            keep = keep | self.blocks[:, :, rows // self.group][..., j[0] // self.block]
        return keep & (j <= i)

    def kept_pairs(self) -> torch.Tensor:
        """The exact number of kept causal pairs over batch, heads and rows (0-dim int64, on the pattern's
        device), counted from the block table and each row's intervals, never from a token mask: row i keeps
        its sinks [0, s), its local region [local_start, i] and, in the gap between them, the keys of its
        group's selected blocks (a prefix count over the table)."""
        b = self.budget
        nkb = -(-b.keys // self.block)
        total, gap, ends = _derived(self.local_start, ("pairs", b.q0, b.rows, self.sinks, self.block, self.group),
                                    lambda: self._row_intervals(nkb))
        total = total * (self.batch * self.heads)
        if self.blocks is None:
            return total
        sel = _pad_to(self.blocks[..., :nkb], nkb + 1, -1, False)  # a column for a boundary at the last key
        prefix = torch.nn.functional.pad(sel.to(torch.int32).cumsum(dim=-1), (1, 0))  # blocks before column c

        def selected_below(at_prefix, at_sel, partial):  # (B, H, rows): keys < x in the row's selected blocks
            p = prefix.flatten(2).gather(2, at_prefix.expand(self.batch, self.heads, -1))
            inside = sel.flatten(2).gather(2, at_sel.expand(self.batch, self.heads, -1))
            return p.long() * self.block + inside.long() * partial

        extra = torch.where(gap, selected_below(*ends[0]) - selected_below(*ends[1]), 0)
        return total + extra.sum()

    def _row_intervals(self, nkb: int):
        """What :meth:`kept_pairs` needs of the rows alone: the kept pairs of one (batch, head) outside the
        selected blocks, the rows with a gap [sinks, local_start), and for the gap's two ends x (local_start,
        the causal sinks s) the table positions of x's block and the keys of that block below x."""
        b, dev = self.budget, self._device()
        pos = torch.arange(b.q0, b.q0 + b.rows, device=dev)
        start = self.local_start.to(dev)
        s = torch.clamp(pos + 1, max=self.sinks)  # the causal sinks: keys [0, s)
        gap = start > s  # keys [s, start) are kept only through selected blocks
        total = torch.where(gap, s + pos - start + 1, pos + 1).sum()
        group = torch.arange(b.rows, device=dev) // self.group

        def at(x):
            c = x // self.block
            return group * (nkb + 2) + c, group * (nkb + 1) + c, x - c * self.block
        return total, gap, (at(start), at(s))

    def block_table(self) -> torch.Tensor:
        """(B, H, groups, key_blocks): whole blocks kept per group, the local region counted where it is
        block-aligned and shared by the group's rows (SpargeAttn's diagonal blocks)."""
        b, g = self.budget, self.group
        nkb = -(-b.keys // self.block)
        first = self.local_start[::g].to(self._device())
        aligned = (torch.arange(nkb, device=first.device)[None, :] * self.block) >= first[:, None]
        aligned = aligned.expand(self.batch, self.heads, -1, -1)
        return aligned if self.blocks is None else aligned | self.blocks

    def tiling(self) -> Tiling:
        # kernels want tiles of >= 16 rows: small groups (decode's single rows) share a 64-row tile
        return Tiling(self.budget, self.group if self.group >= 16 else self.group * -(-64 // self.group), self.block)

    def _tiles(self, tiling: Tiling):
        b, g, dev = self.budget, self.group, self._device()
        assert tiling.q_tile % g == 0 and tiling.kv_block == self.block
        local_any, local_all, g_causal, g_real = _derived(self.local_start, ("tiles", tiling, self.sinks),
                                                          lambda: self._local_tiles(tiling))
        any_ = local_any.expand(self.batch, self.heads, -1, -1)
        all_ = local_all.expand(self.batch, self.heads, -1, -1)
        if self.blocks is not None:
            causal_all = tiling.causal_tiles(dev)[1]
            per = tiling.q_tile // g
            sel = _pad_to(self.blocks, tiling.n_q * per, 2, False)
            shape = (self.batch, self.heads, tiling.n_q, per, tiling.n_kv)
            # a group's block needs a causal pair; groups past the last row do not count for a whole tile
            any_ = any_ | (sel & g_causal).reshape(shape).any(dim=3)
            whole = (sel | ~g_real[:, None]).reshape(shape).all(dim=3)
            all_ = all_ | (whole & causal_all)
        return any_, all_ & any_

    def _local_tiles(self, tiling: Tiling):
        """The tiles of the rows' local regions and sinks (any kept pair, kept whole), (n_q, n_kv); and for the
        selected blocks, which (group, key block) pairs hold a causal pair and which groups hold rows."""
        b, g, dev = self.budget, self.group, self._device()
        causal_any, causal_all = tiling.causal_tiles(dev)
        k_first, k_last = tiling.key_span(dev)
        q_first, q_last = tiling.row_span(dev)
        # the local region [local_start[i], i] of every row, as a range of key blocks, unioned per tile
        rows = torch.arange(b.rows, device=dev)
        tile_of = rows // tiling.q_tile
        lo = self.local_start.to(dev) // self.block
        hi = (rows + b.q0) // self.block
        diff = torch.zeros(tiling.n_q, tiling.n_kv + 1, dtype=torch.long, device=dev)
        diff.index_put_((tile_of, lo), torch.ones_like(lo), accumulate=True)
        diff.index_put_((tile_of, hi + 1), -torch.ones_like(hi), accumulate=True)
        local_any = diff.cumsum(dim=-1)[:, :-1] > 0
        ls_max = torch.full((tiling.n_q,), -1, dtype=torch.long, device=dev).scatter_reduce(
            0, tile_of, self.local_start.to(dev), "amax")
        local_all = (ls_max[:, None] <= k_first[None, :]) & causal_all
        sink_any = (k_first[None, :] < self.sinks) & causal_any
        sink_all = (k_last[None, :] < self.sinks) & causal_all
        groups = tiling.n_q * (tiling.q_tile // g)
        g_last = torch.clamp(b.q0 + (torch.arange(groups, device=dev) + 1) * g, max=b.keys) - 1
        g_causal = k_first[None, :] <= g_last[:, None]
        g_real = torch.arange(groups, device=dev) * g < b.rows
        return local_any | sink_any, local_all | sink_all, g_causal, g_real

    def mask_mod(self, tiling: Tiling):
        """The exact per-token rule over local row and key indices, for the kernel's partial tiles."""
        b, g, q0, sinks, block = self.budget, self.group, self.budget.q0, self.sinks, self.block
        dev = self._device()
        rows_pad, keys_pad = tiling.n_q * tiling.q_tile, tiling.n_kv * tiling.kv_block
        local_start = self.local_start.to(dev)
        if local_start.shape[0] < rows_pad:
            local_start = _derived(local_start, ("padded", rows_pad), lambda: _pad_to(local_start, rows_pad, 0, 0))
        if self.blocks is None:
            def mask_mod(bi, hi, q, kv):
                pos = q + q0
                return (kv <= pos) & ((kv >= local_start[q]) | (kv < sinks))
            return mask_mod
        blocks = _pad_to(_pad_to(self.blocks, rows_pad // g, 2, False), keys_pad // block, 3, False)

        def mask_mod(bi, hi, q, kv):
            pos = q + q0
            return (kv <= pos) & (blocks[bi, hi, q // g, kv // block] | (kv >= local_start[q]) | (kv < sinks))
        return mask_mod


@dataclass
class LinePattern(_TileCache):
    """keep(i, j) = j <= i and (vertical[j] or slash[i - j]) per (batch, head); slash[0] (the row itself) always."""

    budget: Budget
    vertical: torch.Tensor  # (B, H, keys) bool
    slash: torch.Tensor  # (B, H, keys) bool, indexed by the offset i - j
    q_tile: int = 64
    kv_block: int = 64

    def __post_init__(self):
        self.slash = self.slash.clone()
        self.slash[..., 0] = True

    def token_mask(self, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """(B, H, rows, keys) bool, causal; rows ``r0 .. r1 - 1`` over keys 0 .. q0 + r1 - 1 when a range is given."""
        b, dev = self.budget, self.vertical.device
        r1 = b.rows if r1 is None else min(r1, b.rows)
        keys = b.q0 + r1
        i = torch.arange(b.q0 + r0, b.q0 + r1, device=dev)[:, None]
        j = torch.arange(keys, device=dev)[None, :]
        offset = (i - j).clamp(min=0)
        return (self.vertical[:, :, None, :keys] | self.slash[:, :, offset]) & (j <= i)

    def row_mask(self, rows: torch.Tensor, keys: int) -> torch.Tensor:
        """(B, H, len(rows), keys) bool, causal: the rows ``rows`` of :meth:`token_mask` over keys 0 .. keys - 1."""
        dev = self.vertical.device
        i = (self.budget.q0 + rows.to(dev))[:, None]
        j = torch.arange(keys, device=dev)[None, :]
        return (self.vertical[:, :, None, :keys] | self.slash[:, :, (i - j).clamp(min=0)]) & (j <= i)

    def kept_pairs(self) -> torch.Tensor:
        """The exact number of kept causal pairs (0-dim int64, on the pattern's device), from prefix counts
        of the lines: per row, its causal vertical keys plus its causal slash offsets, less the pairs on both
        (key j on a vertical line meets the slash offsets of rows max(q0, j) .. q0 + rows - 1)."""
        b, dev = self.budget, self.vertical.device
        pos = torch.arange(b.q0, b.keys, device=dev)
        vertical = self.vertical[..., : b.keys].long()
        below_v = torch.nn.functional.pad(vertical.cumsum(dim=-1), (1, 0))  # [c]: vertical keys < c
        below_s = torch.nn.functional.pad(self.slash[..., : b.keys].long().cumsum(dim=-1), (1, 0))
        j = torch.arange(b.keys, device=dev)
        both = vertical * (below_s[..., b.keys - j] - below_s[..., (b.q0 - j).clamp(min=0)])
        return below_v[..., pos + 1].sum() + below_s[..., pos + 1].sum() - both.sum()

    def tiling(self) -> Tiling:
        return Tiling(self.budget, self.q_tile, self.kv_block)

    def _tiles(self, tiling: Tiling):
        """Tiles crossed by a kept line; none is kept whole (the lines are token-level)."""
        dev = self.vertical.device
        q_first, q_last = tiling.row_span(dev)
        k_first, k_last = tiling.key_span(dev)
        # vertical: the first kept key of each block must be causal for the tile's last row
        j = torch.arange(self.budget.keys, device=dev)
        first_kept = torch.where(self.vertical, j, self.budget.keys)
        first_kept = _pad_to(first_kept, tiling.n_kv * tiling.kv_block, -1, self.budget.keys)
        first_kept = first_kept.reshape(*first_kept.shape[:2], tiling.n_kv, tiling.kv_block).amin(dim=-1)
        vertical_any = first_kept[:, :, None, :] <= q_last[None, None, :, None]
        # slash: the tile's offsets i - j form the interval [q_first - k_last, q_last - k_first]
        counts = torch.nn.functional.pad(self.slash.long().cumsum(dim=-1), (1, 0))  # counts[o] = kept offsets < o
        lo = (q_first[:, None] - k_last[None, :]).clamp(min=0)
        hi = (q_last[:, None] - k_first[None, :]).clamp(min=-1).clamp(max=self.budget.keys - 1)
        slash_any = (counts[..., (hi + 1).flatten()] - counts[..., lo.flatten().clamp(max=self.budget.keys)])
        slash_any = (slash_any.reshape(*slash_any.shape[:2], tiling.n_q, tiling.n_kv) > 0) & (hi >= lo)
        any_ = vertical_any | slash_any
        return any_, torch.zeros_like(any_)

    def mask_mod(self, tiling: Tiling):
        q0 = self.budget.q0
        vertical = _pad_to(self.vertical, tiling.n_kv * tiling.kv_block, -1, False)
        slash = _pad_to(self.slash, q0 + tiling.n_q * tiling.q_tile, -1, False)

        def mask_mod(bi, hi, q, kv):
            pos = q + q0
            off = torch.clamp(pos - kv, min=0)
            return (kv <= pos) & (vertical[bi, hi, kv] | slash[bi, hi, off])
        return mask_mod


from sparsebench.attention.blockmask import _takes_compute_q_blocks, block_mask  # noqa: E402,F401 (re-exported)
