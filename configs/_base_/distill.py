# Our distillation recipe: channel-wise distillation of the logits (CWD, Shu et al. ICCV 2021; tau 4, weight 3 as
# published for segmentation). Measured with tools/kd_bench.py against the student alone and the paper's losses
# (docs/kd_results.md): the paper's weights are in distill-paper.py (configs/<dataset>/distill-ptv3-paper.py).
# A loss is switched on from the command line with e.g. `-- distill.logit_kd.loss_weight=0.3` only if it is a dict
# here; switch one off with `-- distill.cwd_kd=None`.
distill = dict(
    stages=["bottleneck"],  # captured stages of the feature losses (grad_kd, topo_kd, feat_kd); unused by CWD
    teacher_amp_dtype="bfloat16",  # teacher autocast on CUDA; None follows the step's AMP setting
    teacher_capture=None,  # "graphs": the teacher's part of a CUDA step replayed from CUDA graphs (BENCHMARKS.md)
    cwd_kd=dict(type="ChannelWiseKD", temperature=4.0, loss_weight=3.0),
    logit_kd=None,
    grad_kd=None,
    topo_kd=None,
)
