"""Models: ``Point``, serialization, sparse convolution, PT-v3m1, ``DefaultSegmentorV2`` and losses.

Importing this package registers everything in MODELS and LOSSES.
"""
from .builder import LOSSES, MODELS, MODULES, build_model
from .captured import CapturedForward, CapturedSegmentor
from .losses import Criteria, CrossEntropyLoss, LovaszLoss, build_criteria
from .modules import DropPath, PointModule, PointSequential
from .multi_head import MultiHeadSegmentor
from .point import Point
from .ptv3m1 import PointTransformerV3
from .segmentor import DefaultSegmentorV2
from .sparse import SparseConvTensor, SubMConv3d

__all__ = ["CapturedForward", "CapturedSegmentor", "Criteria", "CrossEntropyLoss", "DefaultSegmentorV2", "DropPath", "LOSSES", "LovaszLoss", "MODELS",
           "MODULES", "MultiHeadSegmentor", "Point", "PointModule", "PointSequential", "PointTransformerV3",
           "SparseConvTensor", "SubMConv3d", "build_criteria", "build_model"]
