# Topology-guided distillation (arXiv 2505.08101) on semantic_kitti: the PT-v3m1 base teacher, frozen and loaded from
# teacher_weight (train it first with semseg-pt-v3m1-0-base), distilled into the paper's narrowed student.
#   sh scripts/train.sh -g 4 -d semantic_kitti -c distill-ptv3 -n distill-ptv3
_base_ = ["./semseg-pt-v3m1-0-base.py", "../_base_/models/pt-v3m1-paper-student.py", "../_base_/distill.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/semantic_kitti/semseg-pt-v3m1-0-base/model/model_best.pth"
model = dict(backbone={{ _base_.student_backbone }})
