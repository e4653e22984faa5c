"""PT-v3m1 (Point Transformer V3, Pointcept's base variant) and its parts."""
from .attention import SerializedAttention
from .backbone import FeatureStage, PointTransformerV3
from .block import MLP, Block
from .embedding import Embedding
from .pooling import SerializedPooling, SerializedUnpooling
from .windows import WindowPartition, build_windows

__all__ = ["Block", "Embedding", "FeatureStage", "MLP", "PointTransformerV3", "SerializedAttention",
           "SerializedPooling", "SerializedUnpooling", "WindowPartition", "build_windows"]
