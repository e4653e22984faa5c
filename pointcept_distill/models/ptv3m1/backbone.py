"""Point Transformer V3 (``PT-v3m1``) with upstream Pointcept's constructor arguments and state-dict layout."""
from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..backend import Backend
from ..builder import MODELS
from ..modules import PointModule, PointSequential
from ..point import Point
from ..sparse import SubMConv3d
from .attention import SerializedAttention
from .block import Block
from .embedding import Embedding
from .pooling import SerializedPooling, SerializedUnpooling

__all__ = ["FeatureStage", "PointTransformerV3"]


class FeatureStage(NamedTuple):
    """A named feature tap: the module whose output Point is the stage's, and the stage's level (poolings from
    the input voxels)."""

    module: nn.Module
    level: int


@MODELS.register_module("PT-v3m1")
class PointTransformerV3(PointModule):
    """PTv3 (Wu et al., CVPR 2024) as Pointcept's PT-v3m1: stem, serialized-attention encoder and decoder.

    ``forward(data_dict)`` returns the stage-0 ``Point`` with ``feat`` (N, dec_channels[0]) in input order,
    and ``bottleneck``: a Point of the deepest encoder stage (``feat`` (N_b, enc_channels[-1]) taken before
    the decoder, ``coord``, ``grid_coord``, ``batch``, ``offset``, ``serialized_*``). For a frozen-encoder
    pass use ``encode`` and ``decode`` directly (e.g. encode under no_grad, make the bottleneck's ``feat`` a
    leaf that requires grad, then decode). With ``enc_mode`` the deepest stage is returned, still linked to
    its parents through ``pooling_parent``. ``strides`` are the poolings' strides (what a batch is planned for,
    ``plan.plan_batch``); ``feature_stages`` and ``stage`` name the feature taps. ``backend`` is the kernels its
    layers run (``backend.Backend``), fixed at construction or by ``set_backend``.

    Differences from upstream, by design: orders are shuffled only in training (``self.training and
    shuffle_orders``), so inference is deterministic; attention runs in the input dtype rather than always
    bfloat16; RPE, PDNorm and the non-flash attention path are not implemented (they raise).

    Args:
        in_channels: input feature width.
        order: serialization orders, a name or a sequence of "z", "z-trans", "hilbert", "hilbert-trans";
            block i of a stage uses order ``i % len(order)``.
        stride: pooling strides between stages (2, 4 or 8 each).
        enc_depths, enc_channels, enc_num_head, enc_patch_size: per encoder stage.
        dec_depths, dec_channels, dec_num_head, dec_patch_size: per decoder stage (stage 0 first);
            ``dec_patch_size`` does not affect the math (the decoder reuses the encoder's windows).
        mlp_ratio, qkv_bias, qk_scale, attn_drop, proj_drop, pre_norm: block settings.
        drop_path: largest stochastic-depth rate (linear from 0 over the blocks, per encoder/decoder).
        shuffle_orders: permute the orders on every training forward.
        enable_rpe, enable_flash, upcast_attention, upcast_softmax: upstream's attention flags.
        enc_mode: encoder only (no decoder modules).
        pdnorm_*: upstream's PDNorm flags; only the defaults (off) are supported.
        backend: the kernels (``backend.Backend`` or its keywords as a dict; default: spconv on large CUDA stages,
            the Triton attention kernels where they run).
    """

    def __init__(self, in_channels: int = 6, order: str | Sequence[str] = ("z", "z-trans"),
                 stride: Sequence[int] = (2, 2, 2, 2), enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
                 enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
                 enc_num_head: Sequence[int] = (2, 4, 8, 16, 32),
                 enc_patch_size: Sequence[int] = (48, 48, 48, 48, 48), dec_depths: Sequence[int] = (2, 2, 2, 2),
                 dec_channels: Sequence[int] = (64, 64, 128, 256), dec_num_head: Sequence[int] = (4, 4, 8, 16),
                 dec_patch_size: Sequence[int] = (48, 48, 48, 48), mlp_ratio: float = 4, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 drop_path: float = 0.3, pre_norm: bool = True, shuffle_orders: bool = True,
                 enable_rpe: bool = False, enable_flash: bool = True, upcast_attention: bool = False,
                 upcast_softmax: bool = False, enc_mode: bool = False, pdnorm_bn: bool = False,
                 pdnorm_ln: bool = False, pdnorm_decouple: bool = True, pdnorm_adaptive: bool = False,
                 pdnorm_affine: bool = True,
                 pdnorm_conditions: Sequence[str] = ("ScanNet", "S3DIS", "Structured3D"),
                 backend: Backend | dict | None = None) -> None:
        super().__init__()
        self.backend = backend if isinstance(backend, Backend) else Backend(**(backend or {}))
        self.order = [order] if isinstance(order, str) else list(order)
        self.shuffle_orders = shuffle_orders
        self.enc_mode = enc_mode
        self.num_stages = len(enc_depths)
        self.strides = tuple(int(v) for v in stride)
        _check_lengths(self.num_stages, stride, enc_depths, enc_channels, enc_num_head, enc_patch_size,
                       enc_mode, dec_depths, dec_channels, dec_num_head, dec_patch_size)
        if pdnorm_bn or pdnorm_ln:
            raise NotImplementedError("PT-v3m1: PDNorm (pdnorm_bn / pdnorm_ln) is not supported")
        bn_layer = partial(nn.BatchNorm1d, eps=1e-3, momentum=0.01)
        block_args = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                          proj_drop=proj_drop, norm_layer=nn.LayerNorm, act_layer=nn.GELU, pre_norm=pre_norm,
                          enable_rpe=enable_rpe, enable_flash=enable_flash, upcast_attention=upcast_attention,
                          upcast_softmax=upcast_softmax, conv_path=self.backend.conv,
                          attention_kernel=self.backend.attention)
        self.embedding = Embedding(in_channels, enc_channels[0], norm_layer=bn_layer, act_layer=nn.GELU,
                                   conv_path=self.backend.conv)
        self.enc = self._build_encoder(stride, enc_depths, enc_channels, enc_num_head, enc_patch_size,
                                       drop_path, bn_layer, block_args)
        if not enc_mode:
            self.dec = self._build_decoder(enc_channels, dec_depths, dec_channels, dec_num_head, dec_patch_size,
                                           drop_path, bn_layer, block_args)

    def _blocks(self, stage: PointSequential, s: int, depth: int, channels: int, heads: int, patch: int,
                rates: Sequence[float], block_args: dict[str, Any]) -> None:
        for i in range(depth):
            stage.add(Block(channels, heads, patch_size=patch, drop_path=rates[i], order_index=i % len(self.order),
                            cpe_indice_key=f"stage{s}", **block_args), name=f"block{i}")

    def _build_encoder(self, stride, depths, channels, heads, patches, drop_path, bn_layer,
                       block_args) -> PointSequential:
        rates = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
        enc = PointSequential()
        for s in range(self.num_stages):
            stage = PointSequential()
            if s > 0:
                stage.add(SerializedPooling(channels[s - 1], channels[s], stride=stride[s - 1],
                                            norm_layer=bn_layer, act_layer=nn.GELU), name="down")
            self._blocks(stage, s, depths[s], channels[s], heads[s], patches[s],
                         rates[sum(depths[:s]):sum(depths[:s + 1])], block_args)
            enc.add(stage, name=f"enc{s}")
        return enc

    def _build_decoder(self, enc_channels, depths, channels, heads, patches, drop_path, bn_layer,
                       block_args) -> PointSequential:
        rates = torch.linspace(0, drop_path, sum(depths), device="cpu").tolist()
        channels = list(channels) + [enc_channels[-1]]
        dec = PointSequential()
        for s in reversed(range(self.num_stages - 1)):
            stage = PointSequential()
            stage.add(SerializedUnpooling(channels[s + 1], enc_channels[s], channels[s], norm_layer=bn_layer,
                                          act_layer=nn.GELU), name="up")
            stage_rates = rates[sum(depths[:s]):sum(depths[:s + 1])][::-1]
            self._blocks(stage, s, depths[s], channels[s], heads[s], patches[s], stage_rates, block_args)
            dec.add(stage, name=f"dec{s}")
        return dec

    def set_backend(self, backend: Backend) -> None:
        """Fix the kernels of every layer to ``backend`` (e.g. a captured forward's, when it is built)."""
        self.backend = backend
        for module in self.modules():
            if isinstance(module, SubMConv3d):
                module.conv_path = backend.conv
            elif isinstance(module, SerializedAttention):
                module.kernel = backend.attention

    def feature_stages(self) -> dict[str, FeatureStage]:
        """The feature taps by name: ``{name: FeatureStage(module whose output Point is the stage's, level)}``.

        ``"enc<s>"`` and ``"dec<s>"`` are encoder and decoder stage s, at level s (s poolings from the input
        voxels, so teacher and student stages of one name hold the same voxels); ``"bottleneck"`` is the deepest
        encoder stage (the decoder's input).
        """
        taps = {f"enc{s}": FeatureStage(stage, s) for s, stage in enumerate(self.enc.children())}
        if not self.enc_mode:           # the decoder is built from its deepest stage up
            levels = reversed(range(self.num_stages - 1))
            taps.update({f"dec{s}": FeatureStage(stage, s) for s, stage in zip(levels, self.dec.children())})
        taps["bottleneck"] = taps[f"enc{self.num_stages - 1}"]
        return taps

    def stage(self, name: str) -> FeatureStage:
        """The feature tap ``name`` (``feature_stages``); a KeyError lists the names there are."""
        stages = self.feature_stages()
        if name not in stages:
            raise KeyError(f"PT-v3m1: unknown stage {name!r} (stages: {sorted(stages)})")
        return stages[name]

    def encode(self, data_dict: dict) -> Point:
        """Serialize, sparsify, embed and run the encoder; returns the deepest stage's Point.

        An input ``plan`` (``plan.BatchPlan``, made on the host for this backbone's ``strides``) gives the
        serialization depth and every pooling's number of clusters, so the forward reads nothing from the device;
        a plan made for other strides or another batch is an error. Without one, the depth and the cluster counts
        are read from the device (host syncs on CUDA).
        """
        point = Point(data_dict)
        plan = point.get("plan")
        if plan is not None:
            self._check_plan(plan, point)
            point.level = 0
        permutations = point.get("order_permutations")
        if permutations is not None:
            self._check_permutations(permutations, plan)
        point.serialization(order=self.order, depth=plan.depth if plan is not None else None,
                            shuffle_orders=self.shuffle_orders and self.training,
                            permutation=permutations[0] if permutations is not None else None)
        point.sparsify()
        point = self.embedding(point)
        return self.enc(point)

    def _check_plan(self, plan: Any, point: Point) -> None:
        """A plan fits this backbone's strides and the batch's samples and points (shapes only: no device read)."""
        if tuple(plan.strides) != self.strides:
            raise ValueError(f"PT-v3m1: the input's plan was made for strides {tuple(plan.strides)}, this backbone "
                             f"pools with {self.strides} (plan the batch with plan_batch(batch, backbone.strides))")
        if (plan.samples, plan.sizes[0]) != (point.batch_size, point.feat.shape[0]):
            raise ValueError(f"PT-v3m1: the input's plan is for {plan.samples} samples of {plan.sizes[0]} points, "
                             f"the batch has {point.batch_size} samples of {point.feat.shape[0]} points")

    def shuffled_stages(self) -> list[bool]:
        """Whether a forward now shuffles each stage's serialization orders: stage 0 in the serialization
        (``shuffle_orders``), each later stage in its pooling (which, as upstream's, shuffles in training)."""
        poolings = [getattr(self.enc, f"enc{s}").down for s in range(1, self.num_stages)]
        return [self.training and self.shuffle_orders] + [p.training and p.shuffle_orders for p in poolings]

    def _check_permutations(self, permutations: Any, plan: Any) -> None:
        """Drawn order permutations (``order_permutations``): one row per stage, one column per order, with a plan
        (a pooled stage takes the row of its level)."""
        want = (self.num_stages, len(self.order))
        if plan is None or tuple(permutations.shape) != want:
            raise ValueError(f"PT-v3m1: order_permutations must be a {want} tensor (stages x orders) given with the "
                             f"batch's plan, got shape {tuple(permutations.shape)}"
                             f"{'' if plan is not None else ' without a plan'}")

    def decode(self, point: Point) -> Point:
        """Run the decoder from the deepest stage's Point back to stage 0."""
        return self.dec(point)

    def forward(self, data_dict: dict) -> Point:
        point = self.encode(data_dict)
        if self.enc_mode:
            return point
        bottleneck = Point({k: v for k, v in point.items() if k not in ("pooling_parent", "pooling_inverse")})
        point = self.decode(point)
        point.bottleneck = bottleneck
        return point


def _check_lengths(num_stages: int, stride, enc_depths, enc_channels, enc_num_head, enc_patch_size,
                   enc_mode: bool, dec_depths, dec_channels, dec_num_head, dec_patch_size) -> None:
    """Upstream's length assertions, as errors that name the argument."""
    for name, value, want in (("stride", stride, num_stages - 1), ("enc_channels", enc_channels, num_stages),
                              ("enc_num_head", enc_num_head, num_stages),
                              ("enc_patch_size", enc_patch_size, num_stages)):
        if len(value) != want:
            raise ValueError(f"PT-v3m1: len({name})={len(value)}, expected {want} (len(enc_depths)={num_stages})")
    if enc_mode:
        return
    for name, value in (("dec_depths", dec_depths), ("dec_channels", dec_channels),
                        ("dec_num_head", dec_num_head), ("dec_patch_size", dec_patch_size)):
        if len(value) != num_stages - 1:
            raise ValueError(f"PT-v3m1: len({name})={len(value)}, expected len(enc_depths) - 1 = {num_stages - 1}")
