import torch

from pointcept_distill.models.ptv3m1 import build_windows


def _windows(part):
    """Real windows as lists of serialized positions: the P-windows, then each sample's short window."""
    p = part.patch_size
    out = [w.tolist() for w in part.full.view(-1, p)]
    short = part.short.view(-1, p)
    for row, mask in zip(short, part.short_mask):
        out.append(row[mask].tolist())
    return out


def test_documented_example():
    # pointcept.md 7.4, P=4, counts 3, 10, 9: pad, split at cu_seqlens = [0,3,7,11,15,19,23,27]
    pad = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 9, 10, 13, 14, 15, 16, 17, 18, 19, 20, 21, 18, 19, 20]
    cu = [0, 3, 7, 11, 15, 19, 23, 27]
    expected = [pad[a:b] for a, b in zip(cu[:-1], cu[1:])]
    part = build_windows(torch.tensor([3, 13, 22]), 22, 4)
    windows = _windows(part)
    assert all(w in windows for w in expected)
    # the remaining rows are unused: a spare P-window and the short rows of the two long samples
    spare = [w for w in windows if w not in expected]
    assert len(spare) == len(windows) - len(expected) == 3
    # every serialized position reads its output from a slot that holds it, in its own window
    flat = torch.cat([part.full, part.short])
    assert torch.equal(flat[part.unpad], torch.arange(22))
    assert part.unpad[:3].tolist() == [28, 29, 30]   # sample 0 lives in the short rows after the 7 P-windows


def test_shapes_depend_only_on_n_b_p():
    offset = torch.tensor([100, 150, 151])
    part = build_windows(offset, 151, 16)
    assert part.full.shape == ((151 + 3 * 15) // 16 * 16,)
    assert part.short.shape == (3 * 16,) and part.short_mask.shape == (3, 16)
    flat = torch.cat([part.full, part.short])
    assert torch.equal(flat[part.unpad], torch.arange(151))
    assert part.short_mask.sum(1).tolist() == [1, 1, 1]   # 100 and 50 > 16 are long; 1 point is one short window


def test_kernel_tables_cover_every_point_once_through_its_own_slot():
    offset = torch.tensor([3, 13, 22])                      # a short sample, two long ones (P = 4)
    part = build_windows(offset, 22, 4)
    order = torch.randperm(22, generator=torch.Generator().manual_seed(0))
    rows, lengths, dest = part.kernel_tables(0, order)
    full, short, slot = part.gather_indices(0, order, torch.argsort(order))
    assert rows.shape == (part.num_full_windows + 3, 4) and lengths.shape == (rows.shape[0],)
    assert torch.equal(rows.reshape(-1), torch.cat([full, short]))
    # keys: P for the 6 real P-windows, 0 for the spare one and for the short rows of the two long samples
    assert lengths.tolist() == [4] * 6 + [0] * (part.num_full_windows - 6) + [3, 0, 0]
    written = dest[dest >= 0]
    assert torch.equal(written.sort().values, torch.arange(22))          # every point's output exactly once
    # ... from the slot that SDPA's path reads it back from, which holds that point
    assert torch.equal(torch.nonzero(dest >= 0).squeeze(1)[torch.argsort(written)], slot)
    assert torch.equal(rows.reshape(-1)[slot], torch.arange(22))
    assert part.kernel_tables(0, order)[0] is rows                      # cached per order
