# Our distillation recipe: channel-wise distillation of the logits (CWD, Shu et al. ICCV 2021; tau 2, weight 3)
# plus relation distillation of the class probabilities (DIST, Huang et al. NeurIPS 2022; tau 1, weight 1).
# Chosen on the benchmark's dev data (data seed 1000) only. Measured with tools/kd_bench.py against the student alone and the paper's losses
# (docs/kd_results.md): the paper's weights are in distill-paper.py (configs/<dataset>/distill-ptv3-paper.py).
# A loss is switched on from the command line with e.g. `-- distill.logit_kd.loss_weight=0.3` only if it is a dict
# here; switch one off with `-- distill.cwd_kd=None`.
distill = dict(
    stages=["bottleneck"],  # captured stages of the feature losses (grad_kd, topo_kd, feat_kd); unused by CWD
    teacher_amp_dtype="bfloat16",  # teacher autocast on CUDA; None follows the step's AMP setting
    teacher_capture=None,  # "graphs": the teacher's part of a CUDA step replayed from CUDA graphs (BENCHMARKS.md)
    cwd_kd=dict(type="ChannelWiseKD", temperature=2.0, loss_weight=3.0),
    dist_kd=dict(type="DISTKD", temperature=1.0, loss_weight=1.0),
    logit_kd=None,
    grad_kd=None,
    topo_kd=None,
)
