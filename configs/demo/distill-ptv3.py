# `make demo`, step 2: the demo teacher (exp/demo/teacher) distilled into the demo student with our recipe
# (configs/_base_/distill.py; the paper's losses: distill-ptv3-paper.py).
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py", "../_base_/distill.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/demo/teacher/model/model_best.pth"
model = dict(backbone_out_channels=16, backbone={{ _base_.student_backbone }})
epoch = 30
eval_epoch = 30
