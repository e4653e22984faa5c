"""Attention windows over serialized points with flash-attention varlen semantics, built without host syncs."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["WindowPartition", "build_windows"]


@dataclass
class WindowPartition:
    """Where each serialized position goes in the two batched attention calls of a stage.

    Upstream (flash varlen) semantics: a sample with ``n <= P`` points is one window of length n; a larger
    sample is cut into ``ceil(n / P)`` windows of P, the last one filled up with the P - r positions just
    before it (so it holds the sample's last P points). Here:

    - ``full`` (W*P,): serialized positions of the P-windows, W = (N + B*(P-1)) // P, a static bound on their
      number; windows past the real ones hold position 0 and their outputs are never read;
    - ``short`` (B*P,) with ``short_mask`` (B, P): one row per sample for the short windows, keys past n
      masked (position 0 stays unmasked so that a row of a long sample never softmaxes over nothing);
    - ``unpad`` (N,): slot of each serialized position in ``cat(full_out, short_out)``;
    - ``lengths`` (W + B,): keys of each window in that order, P for the real P-windows, n for a short sample's
      row, 0 for windows whose outputs are never read.

    Everything has shapes known from N, B and P alone, so building and using it needs no host sync.
    ``gather_indices`` composes these with one serialization order, once per order and stage.
    """

    patch_size: int
    full: Tensor
    short: Tensor
    short_mask: Tensor
    unpad: Tensor
    lengths: Tensor
    _by_order: dict[int, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict, repr=False)
    _tables: dict[int, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict, repr=False)

    def gather_indices(self, order_index: int, order: Tensor, inverse: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(point rows of the P-windows, point rows of the short rows, output slot of each point) for one order.

        Args:
            order_index: cache key, the row of ``serialized_order`` that ``order`` and ``inverse`` come from.
            order: (N,) point index at each serialized position.
            inverse: (N,) serialized position of each point.
        """
        if order_index not in self._by_order:
            self._by_order[order_index] = (order[self.full], order[self.short], self.unpad[inverse])
        return self._by_order[order_index]

    def kernel_tables(self, order_index: int, order: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``window_attention``'s tables of one order, the full and short windows as one batch: the point row of
        every window slot (W + B, P), the windows' ``lengths`` and the point row each slot's output goes to
        (W + B) * P (-1: none; every point once).

        Args:
            order_index: cache key, the row of ``serialized_order`` that ``order`` comes from.
            order: (N,) point index at each serialized position.
        """
        if order_index not in self._tables:
            rows = order[torch.cat([self.full, self.short])].view(-1, self.patch_size)
            dest = torch.full((rows.numel(),), -1, dtype=order.dtype, device=order.device)
            self._tables[order_index] = (rows, self.lengths, dest.index_put_((self.unpad,), order))
        return self._tables[order_index]

    @property
    def num_full_windows(self) -> int:
        return self.full.shape[0] // self.patch_size


def build_windows(offset: Tensor, num_points: int, patch_size: int) -> WindowPartition:
    """Partition the serialized positions of a batch (cumulative ``offset`` (B,), N points) into windows."""
    p = patch_size
    b = offset.shape[0]
    device = offset.device
    counts = torch.diff(offset, prepend=offset.new_zeros(1))                 # (B,)
    starts = offset - counts
    is_long = counts > p
    n_windows = torch.where(is_long, (counts + p - 1) // p, torch.zeros_like(counts))
    win_end = torch.cumsum(n_windows, 0)
    win_start = win_end - n_windows

    w_total = max((num_points + b * (p - 1)) // p, 1)
    slot = torch.arange(w_total * p, device=device)
    window, pos = slot // p, slot % p
    owner = torch.searchsorted(win_end, window, right=True).clamp_(max=b - 1)
    local = (window - win_start[owner]) * p + pos
    local = torch.where(local >= counts[owner], local - p, local)         # filler: one window earlier
    real = window < win_end[owner]
    full = torch.where(real, starts[owner] + local, torch.zeros_like(local))

    pos_s = torch.arange(p, device=device)
    valid = (pos_s < counts.unsqueeze(1)) & ~is_long.unsqueeze(1)            # (B, P)
    short = (starts.unsqueeze(1) + torch.minimum(pos_s, (counts - 1).clamp(min=0).unsqueeze(1)))
    short = short.clamp_(max=max(num_points - 1, 0)).reshape(-1)
    short_mask = valid | (pos_s == 0)

    batch = torch.searchsorted(offset, torch.arange(num_points, device=device), right=True)
    local_s = torch.arange(num_points, device=device) - starts[batch]
    unpad = torch.where(is_long[batch], win_start[batch] * p + local_s, w_total * p + batch * p + local_s)
    # keys per window for the kernel; 0 where no output is read (spare P-windows, short rows of long or empty
    # samples), so that it spends no work there
    lengths = torch.cat([torch.where(torch.arange(w_total, device=device) < win_end[-1], p, 0), valid.sum(1)])
    return WindowPartition(p, full, short, short_mask, unpad, lengths)
