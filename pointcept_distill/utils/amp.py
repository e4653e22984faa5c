"""Autocast dtypes by their config names (``amp_dtype``, ``distill.teacher_amp_dtype``)."""
from __future__ import annotations

import torch

__all__ = ["AMP_DTYPES"]

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
