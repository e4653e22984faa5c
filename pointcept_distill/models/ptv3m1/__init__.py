"""PT-v3m1 (Point Transformer V3, Pointcept's base variant) and its parts."""
from .attention import SerializedAttention, window_attention_kernel
from .backbone import PointTransformerV3
from .block import MLP, Block
from .embedding import Embedding
from .pooling import SerializedPooling, SerializedUnpooling
from .windows import WindowPartition, build_windows

__all__ = ["Block", "Embedding", "MLP", "PointTransformerV3", "SerializedAttention", "SerializedPooling",
           "SerializedUnpooling", "WindowPartition", "build_windows", "window_attention_kernel"]
