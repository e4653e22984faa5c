"""Knowledge distillation on top of the Pointcept-compatible core: losses (registered in LOSSES)."""
from . import losses

__all__ = ["losses"]
