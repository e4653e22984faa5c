# The paper's narrowed PT-v3m1 student trained alone (no distillation) on the three datasets together; the label
# space (heads or common) is the one chosen in semseg-pt-v3m1-0-base.py.
#   sh scripts/train.sh -g 4 -d joint -c semseg-pt-v3m1-student -n semseg-pt-v3m1-student
_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/pt-v3m1-paper-student.py"]

model = dict(backbone={{ _base_.student_backbone }})
