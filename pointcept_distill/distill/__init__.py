"""Knowledge distillation on top of the Pointcept-compatible core: the DistillTrainer and its losses."""
from . import losses
from .trainer import DistillTrainer

__all__ = ["losses", "DistillTrainer"]
