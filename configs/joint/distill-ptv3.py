# Topology-guided distillation on the three datasets together: the joint teacher of semseg-pt-v3m1-0-base (train
# it first; same label space) distilled into the paper's narrowed student, on mixed batches.
# With label_space="heads" the logit KD compares the heads' concatenated logits (docs/joint.md).
#   sh scripts/train.sh -g 4 -d joint -c semseg-pt-v3m1-0-base -n semseg-pt-v3m1-0-base
#   sh scripts/train.sh -g 4 -d joint -c distill-ptv3 -n distill-ptv3
_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/pt-v3m1-paper-student.py", "../_base_/distill.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/joint/semseg-pt-v3m1-0-base/model/model_best.pth"
model = dict(backbone={{ _base_.student_backbone }})
