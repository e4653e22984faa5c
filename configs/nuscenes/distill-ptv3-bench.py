# distill-ptv3 for multi-GPU checks and scaling runs (tools/multi_gpu.py): no test-time evaluation after training,
# SyncBN and no Mix3D (so that N processes of batch B/N compute what one process of batch B computes), iteration
# checkpoints every 4 steps (so that a killed run resumes mid-epoch).
_base_ = ["./distill-ptv3.py"]

sync_bn = True
mix_prob = 0.0
hooks = [
    dict(type="CheckpointLoader"),
    dict(type="ModelHook"),
    dict(type="IterationTimer", warmup_iter=2),
    dict(type="InformationWriter"),
    dict(type="SemSegEvaluator"),
    dict(type="CheckpointSaver", save_freq=None, save_freq_iter=4),
]
