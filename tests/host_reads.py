"""Counting host reads of tensor values, the CPU stand-in for CUDA host-device synchronisations."""
from __future__ import annotations

import collections
import traceback

import torch
from torch.overrides import TorchFunctionMode

# calls that read tensor values on the host, or whose output size depends on them
HOST_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__bool__, torch.Tensor.__int__,
              torch.Tensor.__float__, torch.Tensor.__index__, torch.unique, torch.Tensor.unique,
              torch.unique_consecutive, torch.Tensor.unique_consecutive, torch.nonzero, torch.Tensor.nonzero,
              torch.masked_select}


class HostReads(TorchFunctionMode):
    """Counts host reads by (function, file inside the package, calling function). Reads made by
    ``utils.misc.check_tensor`` are left out: on accelerators it checks on the device, without a sync."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        mask_index = (func is torch.Tensor.__getitem__ and isinstance(args[1], torch.Tensor)
                      and args[1].dtype == torch.bool)
        if func in HOST_READS or mask_index:
            caller = [f for f in traceback.extract_stack()[:-1] if "pointcept_distill" in f.filename][-1]
            if caller.name != "check_tensor":
                self.hits[(func.__name__, caller.filename.rsplit("pointcept_distill/", 1)[-1], caller.name)] += 1
        return func(*args, **(kwargs or {}))

    def by_function(self) -> collections.Counter:
        out: collections.Counter = collections.Counter()
        for (name, _, _), n in self.hits.items():
            out[name] += n
        return out
