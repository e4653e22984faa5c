# PT-v3m1 teacher on nuScenes lidarseg, as Pointcept's configs/nuscenes/semseg-pt-v3m1-0-base.py.
_base_ = ["../_base_/default_runtime.py"]

batch_size = 12
mix_prob = 0.8
empty_cache = False
enable_amp = True

model = dict(
    type="DefaultSegmentorV2",
    num_classes=16,
    backbone_out_channels=64,
    backbone=dict(
        type="PT-v3m1",
        in_channels=4,
        order=["z", "z-trans", "hilbert", "hilbert-trans"],
        stride=(2, 2, 2, 2),
        enc_depths=(2, 2, 2, 6, 2),
        enc_channels=(32, 64, 128, 256, 512),
        enc_num_head=(2, 4, 8, 16, 32),
        enc_patch_size=(1024, 1024, 1024, 1024, 1024),
        dec_depths=(2, 2, 2, 2),
        dec_channels=(64, 64, 128, 256),
        dec_num_head=(4, 4, 8, 16),
        dec_patch_size=(1024, 1024, 1024, 1024),
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
        drop_path=0.3,
        shuffle_orders=True,
        pre_norm=True,
        enable_rpe=False,
        enable_flash=True,
        upcast_attention=False,
        upcast_softmax=False,
        enc_mode=False,
        pdnorm_bn=False,
        pdnorm_ln=False,
        pdnorm_decouple=True,
        pdnorm_adaptive=False,
        pdnorm_affine=True,
        pdnorm_conditions=("nuScenes", "SemanticKITTI", "Waymo"),
    ),
    criteria=[
        dict(type="CrossEntropyLoss", loss_weight=1.0, ignore_index=-1),
        dict(type="LovaszLoss", mode="multiclass", loss_weight=1.0, ignore_index=-1),
    ],
)

epoch = 50
eval_epoch = 50
optimizer = dict(type="AdamW", lr=0.002, weight_decay=0.005)
scheduler = dict(
    type="OneCycleLR",
    max_lr=[0.002, 0.0002],
    pct_start=0.04,
    anneal_strategy="cos",
    div_factor=10.0,
    final_div_factor=100.0,
)
param_dicts = [dict(keyword="block", lr=0.0002)]

# Pointcept's nuScenes data section, built by pointcept_distill/data/pipelines.py (one definition for the three
# datasets and the joint configs; exp/<dataset>/<name>/config.py shows it spelled out):
#   train: RandomRotate(z, +-pi, p 0.5), RandomScale(0.9-1.1), RandomFlip, RandomJitter(0.005, 0.02),
#          GridSample(0.05, train), ToTensor, Collect(coord, grid_coord, segment; feat coord + strength)
#   val:   Copy(segment -> origin_segment), GridSample(0.05, inverse), ToTensor, Collect(... origin_segment, inverse)
#   test:  Copy, GridSample(0.025, inverse); voxelize GridSample(0.05, test); TTA: 5 scales x flip (10 views)
# Edit any part as in Pointcept, e.g. data["train"]["transform"].insert(1, dict(type="PointClip", ...)).
from pointcept_distill.data.pipelines import data_config

data_root = "data/nuscenes"
data = data_config("nuscenes", data_root)
