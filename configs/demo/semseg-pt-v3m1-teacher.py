# `make demo`, step 1: a small PT-v3m1 teacher on simulated nuScenes-format scans (data/demo/nuscenes, written by
# tools/demo.py with the simulator at a twentieth of the azimuth columns, ~1.8k points a scan), sized for 2 CPU cores.
# Also the teacher of tools/kd_bench.py's CPU size (which sets its own schedule).
_base_ = ["../nuscenes/semseg-pt-v3m1-0-base.py"]

seed = 0
num_worker = 1
batch_size = 4
batch_size_val = 2
enable_amp = False
mix_prob = 0.0
epoch = 80
eval_epoch = 80
optimizer = dict(lr=0.004)
scheduler = dict(max_lr=[0.004, 0.004], pct_start=0.1)
param_dicts = [dict(keyword="block", lr=0.004)]
hooks = {{ _base_.hooks }}[:-1]  # without PreciseEvaluator: the demo tests each model itself

model = dict(
    backbone_out_channels=32,
    backbone=dict(
        enc_depths=(1, 1, 1, 2, 1),
        enc_channels=(16, 32, 64, 64, 128),
        enc_num_head=(1, 2, 4, 4, 8),
        enc_patch_size=(256, 256, 256, 256, 256),
        dec_depths=(1, 1, 1, 1),
        dec_channels=(32, 32, 64, 64),
        dec_num_head=(2, 2, 4, 4),
        dec_patch_size=(256, 256, 256, 256),
        drop_path=0.1,
    ),
)

data_root = "data/demo/nuscenes"
data = dict(
    train=dict(data_root=data_root),
    val=dict(data_root=data_root),
    # two test-time views (identity and flip) instead of the base config's ten, to keep the CPU demo short
    test=dict(data_root=data_root, test_cfg=dict(aug_transform=[
        [dict(type="RandomScale", scale=[1, 1])],
        [dict(type="RandomScale", scale=[1, 1]), dict(type="RandomFlip", p=1)],
    ])),
)
