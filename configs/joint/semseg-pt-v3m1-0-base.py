# PT-v3m1 teacher trained on nuScenes + SemanticKITTI + Waymo together: one ConcatDataset, batches that mix
# the three, per-dataset validation metrics (MultiDatasetEvaluator). The nuScenes base recipe otherwise.
# label_space selects how the three label sets are trained (the student and distillation configs follow):
#   "heads":  a shared backbone and one head per dataset (MultiHeadSegmentor); each point is scored by its
#             dataset's head, its labels stay native (laid out as nuScenes 0-15, KITTI 16-34, Waymo 35-56);
#   "common": every label mapped into the 14 common classes (docs/joint.md); one head (DefaultSegmentorV2).
#   sh scripts/train.sh -g 4 -d joint -c semseg-pt-v3m1-0-base -n semseg-pt-v3m1-0-base
from pointcept_distill.data.label_space import joint_data_config

_base_ = ["../nuscenes/semseg-pt-v3m1-0-base.py"]

label_space = "heads"
data_roots = dict(nuscenes="data/nuscenes", semantic_kitti="data/semantic_kitti", waymo="data/waymo")

dataset_type = "ConcatDataset"
data_root = None
data = dict(_delete_=True, **joint_data_config(data_roots, label_space))
names = data["names"]
if label_space == "heads":
    model = dict(
        _delete_=True,
        type="MultiHeadSegmentor",
        num_classes=data["dataset_num_classes"],
        head_names=data["datasets"],
        backbone_out_channels=64,
        backbone={{ _base_.model.backbone }},
        criteria={{ _base_.model.criteria }},
    )
else:
    model = dict(num_classes=data["num_classes"])

hooks = [
    dict(type="CheckpointLoader"),
    dict(type="ModelHook"),
    dict(type="IterationTimer", warmup_iter=2),
    dict(type="InformationWriter"),
    dict(type="MultiDatasetEvaluator"),
    dict(type="CheckpointSaver", save_freq=None),
]  # no PreciseEvaluator: test a joint model per dataset with tools/cross_eval.py
