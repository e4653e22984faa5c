"""Training and testing engine (Pointcept-compatible): trainers, hooks, testers, launch."""
from .cross_eval import CrossDatasetTester
from .defaults import create_ddp_model, default_argument_parser, default_config_parser, default_setup
from .hooks import HOOKS, HookBase, build_hooks
from .launch import launch
from .test import TESTERS, SemSegTester, TesterBase
from .train import TRAINERS, Trainer, TrainerBase

__all__ = ["TRAINERS", "TESTERS", "HOOKS", "HookBase", "build_hooks", "Trainer", "TrainerBase", "TesterBase",
           "SemSegTester", "CrossDatasetTester", "launch", "default_argument_parser", "default_config_parser",
           "default_setup", "create_ddp_model"]
