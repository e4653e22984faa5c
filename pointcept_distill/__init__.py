"""pointcept-distill: Pointcept-compatible PTv3 and its topology-aware knowledge distillation."""
__version__ = "0.1.0"
