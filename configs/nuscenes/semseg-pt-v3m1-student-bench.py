# The student-alone run beside distill-ptv3-bench (same hooks and settings), for the scaling figure.
_base_ = ["./semseg-pt-v3m1-student.py"]

sync_bn = True
mix_prob = 0.0
hooks = {{ _base_.hooks }}[:-1]  # without PreciseEvaluator
