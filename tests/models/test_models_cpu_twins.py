"""CPU twins of tests/models/test_models_cuda.py: autocast against float32, and the forward's host reads.

On CUDA a host read (``.item()``, ``int(t)``, ``torch.unique``...) is a device synchronisation; on the CPU the same
calls are counted through a ``TorchFunctionMode``, so CI checks the forward's sync budget without a GPU.
(The spconv test's CPU twin is tests/models/sparse/test_subm_conv.py::test_matches_upstream_fixture.)
"""
from __future__ import annotations

import collections
import traceback

import torch
from torch.overrides import TorchFunctionMode

from pointcept_distill.models import build_model

# calls that read tensor values on the host, or whose output size depends on them
HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__bool__, torch.Tensor.__int__,
              torch.Tensor.__float__, torch.Tensor.__index__, torch.unique, torch.Tensor.unique,
              torch.unique_consecutive, torch.Tensor.unique_consecutive, torch.nonzero, torch.Tensor.nonzero,
              torch.masked_select}


class HostReads(TorchFunctionMode):
    """Counts host reads by (function, calling line inside the package)."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        mask_index = (func is torch.Tensor.__getitem__ and isinstance(args[1], torch.Tensor)
                      and args[1].dtype == torch.bool)
        if func in HOST_READS or mask_index:
            caller = [f for f in traceback.extract_stack()[:-1] if "pointcept_distill" in f.filename][-1]
            self.hits[(func.__name__, caller.filename.rsplit("pointcept_distill/", 1)[-1], caller.lineno)] += 1
        return func(*args, **(kwargs or {}))


def _model(tiny_config):
    torch.manual_seed(0)
    return build_model(dict(type="DefaultSegmentorV2", num_classes=5, backbone_out_channels=8,
                            backbone=tiny_config())).eval()


def test_autocast_agrees_with_float32_on_cpu(make_scene, tiny_config):
    model = _model(tiny_config)
    data = make_scene((3000, 1200))
    with torch.no_grad():
        ref = model(dict(data))["seg_logits"]
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast("cpu", dtype=dtype):
                out = model(dict(data))["seg_logits"]
            assert out.dtype == dtype
            assert ((out.float() - ref).norm() / ref.norm()) < 2e-2, dtype


def test_host_reads_only_for_depth_and_pooling(make_scene, tiny_config):
    model = _model(tiny_config)
    data = make_scene((3000, 1200))
    with torch.no_grad(), HostReads() as reads:
        model(dict(data))
    by_function = collections.Counter()
    for (name, _, _), n in reads.hits.items():
        by_function[name] += n
    # serialization depth + one torch.unique per pooling (2 in the tiny model), as the CUDA test counts
    assert by_function == {"__int__": 1, "unique": 2}, dict(reads.hits)
