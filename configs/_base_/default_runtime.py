# Runtime defaults, as Pointcept's configs/_base_/default_runtime.py (wandb off by default; enable_wandb=True logs
# the TensorBoard scalars to Weights & Biases too, with the wandb extra: docs/submission.md).
weight = None  # path to a checkpoint: initial weights, or the state to resume with resume=True
resume = False
evaluate = True  # validate after each trainer epoch (needed for model_best.pth)
test_only = False
seed = None  # None: drawn at start and written to save_path/config.py
save_path = "exp/default"
num_worker = 16  # total over processes
batch_size = 16  # total over processes
balance_ranks = 0  # K > 0: steps of similar point counts, dealt evenly over the processes (docs/multi_gpu.md)
gradient_accumulation_steps = 1
batch_size_val = None  # None: 1 per process
batch_size_test = None  # None: 1 per process
epoch = 100  # data passes
eval_epoch = 100  # trainer epochs (validation and checkpoint after each); epoch // eval_epoch passes each
clip_grad = None
max_bad_steps = 5  # consecutive non-finite losses tolerated (each skipped) before training stops
deterministic = None  # torch deterministic algorithms (exact resume); None: on without CUDA, off with CUDA
sync_bn = False
enable_amp = False
amp_dtype = "float16"  # or "bfloat16" (no GradScaler)
empty_cache = False
empty_cache_per_epoch = False
find_unused_parameters = False
# DistributedDataParallel's communication options (docs/multi_gpu.md#ddp-options); unknown entries are refused.
# bucket_cap_mb None: DDP's default (25 MiB buckets, the first 1 MiB); a number (MiB) caps every bucket
ddp = dict(bucket_cap_mb=None, static_graph=False, gradient_as_bucket_view=False, broadcast_buffers=False)
# Training steps replayed from CUDA graphs (docs/execution.md#the-captured-training-step-captured_step):
# enabled="auto" (the default): captured on CUDA where nothing is refused, eager steps otherwise (the reason logged);
# --options captured_step.enabled=True (captured or an error naming what is refused) or False (eager steps);
# unknown entries are refused.
captured_step = dict(enabled="auto", compile=None, steps_per_octave=4, warmup=2, max_graphs=None)
enable_wandb = False
wandb_project = "pointcept"
wandb_key = None
mix_prob = 0
param_dicts = None  # e.g. [dict(keyword="block", lr=0.0002)]

hooks = [
    dict(type="CheckpointLoader"),
    dict(type="ModelHook"),
    dict(type="IterationTimer", warmup_iter=2),
    dict(type="InformationWriter"),
    dict(type="SemSegEvaluator"),
    dict(type="CheckpointSaver", save_freq=None),
    dict(type="PreciseEvaluator", test_last=False),
]

train = dict(type="DefaultTrainer")
test = dict(type="SemSegTester", verbose=True)
