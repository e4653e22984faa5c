# The paper's distillation losses and weights as its official code sets them (gamma 0.3, lambda 10, beta 0.1), on the
# encoder bottleneck: `configs/<dataset>/distill-ptv3-paper.py` reproduce the paper; distill.py is our recipe.
distill = dict(
    stages=["bottleneck"],
    teacher_amp_dtype="bfloat16",  # teacher autocast on CUDA; None follows the step's AMP setting
    teacher_capture=None,  # "graphs": the teacher's part of a CUDA step replayed from CUDA graphs (BENCHMARKS.md)
    logit_kd=dict(type="LogitKD", temperature=1.0, loss_weight=0.3, ignore_index=-1),
    grad_kd=dict(type="GradGuidedKD", norm="minmax", loss_weight=10.0),
    topo_kd=dict(type="TopologyKD", num_points=64, homology_dims=(0, 1), distance="chamfer",
                 normalize=True, loss_weight=0.1, workers=8),  # workers: host processes for the persistence pairs
)
