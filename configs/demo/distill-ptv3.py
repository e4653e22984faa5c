# `make demo`, step 2: the demo teacher (exp/demo/teacher) distilled into the demo student with our recipe
# (configs/_base_/distill.py; the paper's losses: distill-ptv3-paper.py).
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py", "../_base_/distill.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/demo/teacher/model/model_best.pth"
model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})
optimizer = dict(lr={{ _base_.student_lr }})
scheduler = dict(max_lr=[{{ _base_.student_lr }}] * 2)
param_dicts = [dict(keyword="block", lr={{ _base_.student_lr }})]
epoch = 30
eval_epoch = 30
