# The narrower tiny student of distill-ptv3-sim-tiny trained alone on the three simulator profiles together.
#   sh scripts/train.sh -g 1 -d joint -c semseg-pt-v3m1-student-sim-tiny -n student-sim-tiny
_base_ = ["./semseg-pt-v3m1-sim-tiny.py", "../_base_/models/sim-tiny-student.py"]

model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})
