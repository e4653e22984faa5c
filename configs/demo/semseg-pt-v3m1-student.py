# `make demo`, step 3: the demo student trained alone (the baseline the distilled student is compared with).
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py"]

model = dict(backbone_out_channels=16, backbone={{ _base_.student_backbone }})
epoch = 30
eval_epoch = 30
