# The demo student distilled with the paper's exact weights (official code: gamma 0.3, lambda 10, beta 0.1).
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py", "../_base_/distill-paper.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/demo/teacher/model/model_best.pth"
model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})
optimizer = dict(lr={{ _base_.student_lr }})
scheduler = dict(max_lr=[{{ _base_.student_lr }}] * 2)
param_dicts = [dict(keyword="block", lr={{ _base_.student_lr }})]
distill = dict(topo_kd=dict(num_points=48, workers=0))
epoch = 30
eval_epoch = 30
