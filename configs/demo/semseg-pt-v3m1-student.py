# `make demo`, step 3: the demo student trained alone (the baseline the distilled student is compared with).
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py"]

model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})
optimizer = dict(lr={{ _base_.student_lr }})
scheduler = dict(max_lr=[{{ _base_.student_lr }}] * 2)
param_dicts = [dict(keyword="block", lr={{ _base_.student_lr }})]
epoch = 30
eval_epoch = 30
