# The narrower tiny student of distill-ptv3-sim-tiny trained alone on the three simulator profiles together.
#   sh scripts/train.sh -g 1 -d joint -c semseg-pt-v3m1-student-sim-tiny -n student-sim-tiny
_base_ = ["./semseg-pt-v3m1-sim-tiny.py"]

model = dict(
    backbone_out_channels=8,
    backbone=dict(
        enc_channels=(8, 8, 8, 16, 16),
        enc_num_head=(1, 1, 1, 2, 2),
        dec_channels=(8, 8, 8, 16),
        dec_num_head=(1, 1, 1, 2),
    ),
)
