# `make demo`, step 2: the demo teacher (exp/demo/teacher) distilled into the demo student with the paper's losses.
_base_ = ["./semseg-pt-v3m1-teacher.py", "../_base_/models/demo-student.py", "../_base_/distill.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/demo/teacher/model/model_best.pth"
model = dict(backbone_out_channels=16, backbone={{ _base_.student_backbone }})
distill = dict(topo_kd=dict(num_points=48, workers=0))
