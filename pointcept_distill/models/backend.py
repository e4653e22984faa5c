"""``Backend``: which kernels a PT-v3m1 forward runs, fixed when the model (or a captured forward) is built.

The choice is passed down at construction (``PointTransformerV3(backend=...)``) or fixed on a built model with
``backbone.set_backend`` (what a captured forward does when it is built); the layers hold it as an attribute and
no forward reads a global switch. Within a choice, what a call's tensors allow still decides: spconv and Triton
run on CUDA only (Triton also on the CPU under ``TRITON_INTERPRET=1``), the attention kernel has no dropout and no
deterministic backward (``SubMConv3d``, ``SerializedAttention``).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTENTION_KERNELS", "Backend", "CONV_PATHS"]

# auto: spconv on CUDA stages of more than sparse.GATHER_MAX_ROWS voxels when it is installed, the gather-GEMM
# elsewhere; spconv: spconv on every CUDA stage; gather: the gather-GEMM only (plain torch ops: what a CUDA graph
# or a whole-graph compile can hold); implicit: the Triton implicit GEMM (forward, input and weight gradients) where
# Triton can run, the gather-GEMM elsewhere
CONV_PATHS = ("auto", "spconv", "gather", "implicit")
# triton: the window-attention kernels where they can run, SDPA elsewhere; sdpa: SDPA only
ATTENTION_KERNELS = ("triton", "sdpa")


@dataclass(frozen=True)
class Backend:
    """The kernels of a forward.

    Args:
        conv: sparse-convolution path, one of ``CONV_PATHS``.
        attention: serialized-attention kernel, one of ``ATTENTION_KERNELS``.
    """

    conv: str = "auto"
    attention: str = "triton"

    def __post_init__(self) -> None:
        if self.conv not in CONV_PATHS:
            raise ValueError(f"Backend: conv must be one of {CONV_PATHS}, got {self.conv!r}")
        if self.attention not in ATTENTION_KERNELS:
            raise ValueError(f"Backend: attention must be one of {ATTENTION_KERNELS}, got {self.attention!r}")
