# Joint distillation on the three simulator profiles: the tiny joint teacher of semseg-pt-v3m1-sim-tiny (train it
# first) distilled into the narrower tiny student of semseg-pt-v3m1-student-sim-tiny, on mixed batches.
#   sh scripts/train.sh -g 1 -d joint -c semseg-pt-v3m1-sim-tiny -n sim-tiny
#   sh scripts/train.sh -g 1 -d joint -c distill-ptv3-sim-tiny -n distill-sim-tiny
_base_ = ["./semseg-pt-v3m1-sim-tiny.py", "../_base_/distill-paper.py", "../_base_/models/sim-tiny-student.py"]

train = dict(type="DistillTrainer")
teacher = {{ _base_.model }}
teacher_weight = "exp/joint/sim-tiny/model/model_best.pth"
model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})
distill = dict(topo_kd=dict(num_points=32, workers=0))
