# A tiny joint PT-v3m1 on simulator frames of the three profiles, for tests, CPU smoke runs and the
# cross-dataset matrix (tools/cross_dataset_matrix.py):
#   python tools/make_synthetic.py --profile nuscenes --out data/sim/nuscenes --train 4 --val 2 --scale 0.15
#   (same for semantic_kitti and waymo)
#   sh scripts/train.sh -g 1 -d joint -c semseg-pt-v3m1-sim-tiny -n sim-tiny
# label_space: "heads" (one head per dataset) or "common" (14 common classes), as in semseg-pt-v3m1-0-base.py.
from pointcept_distill.data.label_space import joint_data_config

_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/sim-tiny.py"]

seed = 0
num_worker = 0
batch_size = 3
batch_size_val = 3
enable_amp = False
epoch = 2
eval_epoch = 2

label_space = "heads"
data_roots = dict(nuscenes="data/sim/nuscenes", semantic_kitti="data/sim/semantic_kitti", waymo="data/sim/waymo")
data = dict(_delete_=True, **joint_data_config(data_roots, label_space))
names = data["names"]
data["test"]["test_cfg"]["aug_transform"] = [[dict(type="RandomScale", scale=[1, 1])],
                                             [dict(type="RandomScale", scale=[1, 1]), dict(type="RandomFlip", p=1)]]

if label_space == "heads":
    model = dict(_delete_=True, type="MultiHeadSegmentor", num_classes=data["dataset_num_classes"],
                 head_names=data["datasets"])
else:
    model = dict(_delete_=True, type="DefaultSegmentorV2", num_classes=data["num_classes"])
model.update(backbone_out_channels=16, backbone=dict({{ _base_.model.backbone }}, **{{ _base_.tiny_backbone }}),
             criteria={{ _base_.model.criteria }})
