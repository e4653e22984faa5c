# The paper's narrowed PT-v3m1 student trained alone (no distillation), on the waymo base recipe.
_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/pt-v3m1-paper-student.py"]

model = dict(backbone={{ _base_.student_backbone }})
