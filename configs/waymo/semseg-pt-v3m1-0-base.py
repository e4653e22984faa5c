# PT-v3m1 teacher on Waymo, as Pointcept's configs/waymo/semseg-pt-v3m1-0-base.py.
# Model and optimisation as the nuScenes PT-v3m1 config; the data section of Pointcept's LiDAR configs
# (pointcept_distill/data/pipelines.py): the nuScenes pipeline with PointClip(-75.2, -75.2, -4, 75.2, 75.2, 2) first in
# each split, and a 4-rotation test-time augmentation.
from pointcept_distill.data.pipelines import data_config

_base_ = ["../nuscenes/semseg-pt-v3m1-0-base.py"]

model = dict(num_classes=22)

data_root = "data/waymo"
data = dict(_delete_=True, **data_config("waymo", data_root))
