"""Distillation losses, registered in ``pointcept_distill.models.builder.LOSSES``."""
from .cwd import ChannelWiseKD
from .dist_kd import DISTKD, pearson_rows
from .fitnet import FeatureMimicKD
from .grad_kd import GradGuidedKD, importance_map, task_gradient, task_gradients
from .logit_kd import LogitKD
from .persistence import PersistencePairs, rips_pairs_from_distances, rips_persistence_pairs
from .topo_kd import TopologyKD, persistence_diagrams

__all__ = ["LogitKD", "GradGuidedKD", "TopologyKD", "ChannelWiseKD", "DISTKD", "pearson_rows", "FeatureMimicKD",
           "importance_map", "task_gradient", "task_gradients", "rips_persistence_pairs", "rips_pairs_from_distances",
           "PersistencePairs", "persistence_diagrams"]
