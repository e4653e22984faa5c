# PT-v3m1 teacher on SemanticKITTI (Pointcept has no PTv3 config for it).
# Model and optimisation as the nuScenes PT-v3m1 config; the data section of Pointcept's LiDAR configs
# (pointcept_distill/data/pipelines.py): the nuScenes pipeline with PointClip(-35.2, -35.2, -4, 35.2, 35.2, 2) first in
# each split, and a 4-rotation test-time augmentation.
from pointcept_distill.data.pipelines import data_config

_base_ = ["../nuscenes/semseg-pt-v3m1-0-base.py"]

model = dict(num_classes=19)

data_root = "data/semantic_kitti"
data = dict(_delete_=True, **data_config("semantic_kitti", data_root))
