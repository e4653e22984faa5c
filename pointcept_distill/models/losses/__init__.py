"""Segmentation losses registered in LOSSES, and ``build_criteria``."""
from .builder import Criteria, build_criteria
from .cross_entropy import CrossEntropyLoss
from .lovasz import LovaszLoss, lovasz_softmax

__all__ = ["Criteria", "CrossEntropyLoss", "LovaszLoss", "build_criteria", "lovasz_softmax"]
