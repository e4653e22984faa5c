import pytest
import torch

from pointcept_distill.models import Point
from pointcept_distill.models.ptv3m1 import SerializedAttention


def upstream_padding(counts: list[int], p: int):
    """pointcept.md 7.4 literally: pad, unpad and cu_seqlens of the flash path, one sample at a time."""
    n_pad = [(-(-n // p) * p if n > p else n) for n in counts]
    o = [0] + torch.tensor(counts).cumsum(0).tolist()
    op = [0] + torch.tensor(n_pad).cumsum(0).tolist()
    pad = torch.arange(op[-1])
    unpad = torch.arange(o[-1])
    cu = []
    for i, n in enumerate(counts):
        r = n % p
        if n > p and r != 0:
            pad[op[i + 1] - p + r: op[i + 1]] = pad[op[i + 1] - 2 * p + r: op[i + 1] - p].clone()
        pad[op[i]: op[i + 1]] -= op[i] - o[i]
        unpad[o[i]: o[i + 1]] += op[i] - o[i]
        cu += list(range(op[i], op[i + 1], p))
    return pad, unpad, cu + [op[-1]]


def reference_attention(attn: SerializedAttention, point: Point, counts: list[int]) -> torch.Tensor:
    pad, unpad, cu = upstream_padding(counts, attn.patch_size)
    k = attn.order_index
    order = point.serialized_order[k][pad]
    inverse = unpad[point.serialized_inverse[k]]
    h, c = attn.num_heads, attn.channels
    qkv = attn.qkv(point.feat)[order].reshape(-1, 3, h, c // h)
    out = torch.empty(len(pad), h, c // h)
    for a, b in zip(cu[:-1], cu[1:]):
        q, kk, v = qkv[a:b].unbind(1)                                 # each (L, H, d)
        w = torch.einsum("lhd,mhd->hlm", q * attn.scale, kk).softmax(-1)
        out[a:b] = torch.einsum("hlm,mhd->lhd", w, v)
    return attn.proj(out.reshape(-1, c)[inverse])


@pytest.mark.parametrize("counts,p", [((3, 10, 9), 4), ((8, 1, 17, 16), 8), ((40,), 7), ((5, 5), 16)])
def test_matches_upstream_window_semantics(counts, p):
    torch.manual_seed(sum(counts) + p)
    n = sum(counts)
    grid = torch.cat([torch.randperm(512)[:c] for c in counts])
    grid = torch.stack([grid // 64, (grid // 8) % 8, grid % 8], 1)
    point = Point(grid_coord=grid, feat=torch.randn(n, 12), offset=torch.tensor(counts).cumsum(0))
    point.serialization(order=["hilbert", "z-trans"])
    attn = SerializedAttention(12, 3, p, order_index=1).eval()
    want = reference_attention(attn, Point(point), list(counts))
    got = attn(point).feat
    assert torch.allclose(got, want, atol=1e-5)


def test_reference_padding_reproduces_the_documented_example():
    pad, unpad, cu = upstream_padding([3, 10, 9], 4)
    assert pad.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 9, 10,
                            13, 14, 15, 16, 17, 18, 19, 20, 21, 18, 19, 20]
    assert unpad.tolist() == [0, 1, 2, *range(3, 13), *range(15, 24)]
    assert cu == [0, 3, 7, 11, 15, 19, 23, 27]


def test_attention_runs_without_cudnn_sdpa(monkeypatch):
    """cuDNN's SDPA builds a graph per input shape (new window counts every scan): the blocks must not use it."""
    from pointcept_distill.models.ptv3m1 import attention as module
    seen = []
    sdpa = module.F.scaled_dot_product_attention

    def recording_sdpa(*args, **kwargs):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled(),
                     torch.backends.cuda.mem_efficient_sdp_enabled()))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(module.F, "scaled_dot_product_attention", recording_sdpa)
    counts = (9, 20)
    grid = torch.cat([torch.randperm(512)[:c] for c in counts])
    point = Point(grid_coord=torch.stack([grid // 64, (grid // 8) % 8, grid % 8], 1), feat=torch.randn(29, 8),
                  offset=torch.tensor(counts).cumsum(0))
    point.serialization(order=["z"])
    before = torch.backends.cuda.cudnn_sdp_enabled()
    SerializedAttention(8, 2, 8)(point)
    assert seen and all(s == (False, True, True) for s in seen)
    assert torch.backends.cuda.cudnn_sdp_enabled() == before           # the global setting is restored
