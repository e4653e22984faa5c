# A tiny PT-v3m1 on simulator frames in the semantic_kitti layout, for tests and CPU smoke runs:
#   python tools/make_synthetic.py --profile semantic_kitti --out data/sim/semantic_kitti --train 4 --val 2 --scale 0.15
#   sh scripts/train.sh -g 1 -d semantic_kitti -c semseg-pt-v3m1-sim-tiny -n sim-tiny
# Same pipeline as the base config; 2 test-time views instead of the base config's list.
_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/sim-tiny.py"]

seed = 0
num_worker = 0
batch_size = 2
batch_size_val = 2
enable_amp = False
epoch = 2
eval_epoch = 2

model = dict(backbone_out_channels=16, backbone={{ _base_.tiny_backbone }})

data_root = "data/sim/semantic_kitti"
data = dict(
    train=dict(data_root=data_root),
    val=dict(data_root=data_root),
    test=dict(data_root=data_root, test_cfg=dict(aug_transform=[[dict(type="RandomRotateTargetAngle", angle=[0], axis="z", center=[0, 0, 0], p=1)], [dict(type="RandomRotateTargetAngle", angle=[1], axis="z", center=[0, 0, 0], p=1)]])),
)
