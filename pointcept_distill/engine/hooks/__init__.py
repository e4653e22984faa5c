"""Training hooks under Pointcept's names (importing this package registers them in ``HOOKS``)."""
from .base import HOOKS, HookBase, build_hooks
from .checkpoint_loader import CheckpointLoader
from .checkpoint_saver import CheckpointSaver
from .information_writer import InformationWriter
from .iteration_timer import IterationTimer
from .model_hook import ModelHook
from .multi_dataset_evaluator import MultiDatasetEvaluator
from .precise_bn import PreciseBN
from .precise_evaluator import PreciseEvaluator
from .semseg_evaluator import SemSegEvaluator
from .torch_profiler import TorchProfiler

__all__ = ["HOOKS", "HookBase", "build_hooks", "CheckpointLoader", "CheckpointSaver", "InformationWriter",
           "IterationTimer", "ModelHook", "MultiDatasetEvaluator", "PreciseBN", "PreciseEvaluator",
           "SemSegEvaluator", "TorchProfiler"]
