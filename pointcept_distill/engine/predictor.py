"""``Predictor``: per-point class scores of a segmentor, for one sample or voted over a scan's fragments.

Pointcept's test protocol: a scan of a test-mode dataset arrives as ``fragment_list`` (every test-time view,
split into parts by test-mode GridSample); each fragment is one forward pass whose scores are added onto the
scan's points it holds (``fragment["index"]``). A sample with ``inverse`` (``GridSample(return_inverse=True)``)
is then mapped back to every original point.

Scores, the one normalisation (that of Pointcept's ``SemSegTester``): the softmax over the classes of each
forward pass's float32 logits; a vote sums them over the fragments without dividing. A point's row sums to 1
after a single pass and to the number of fragments holding it after a vote; its argmax is the prediction.
``SemSegTester``, ``CrossDatasetTester`` and ``inference.Segmenter`` all predict through this class.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.collate import collate_fn
from ..models.captured import build_captured
from ..utils.tensors import to_device

__all__ = ["Predictor"]

# keys of a test-mode sample that are not model inputs (given ``segment``, the model would compute a loss)
NOT_INPUTS = ("segment", "origin_segment", "inverse", "index")


class Predictor:
    """Per-point class scores of ``model`` (normalisation: see the module docstring).

    Args:
        model: a segmentor in eval mode whose forward returns ``seg_logits`` for inputs without ``segment``.
        device: where ``model`` lives; scores are returned there.
        capture: None (eager), "graphs" or "compiled": run the model through ``CapturedSegmentor``
            (``models.captured.build_captured``: fixed-capacity batches replayed from CUDA graphs; same scores,
            faster on a GPU).
        capture_dtype: autocast dtype of the captured model (a torch dtype or "bfloat16", "float16"), or None
            for float32.
        dataset_index: for a ``MultiHeadSegmentor``, the head that scores every point (its ``dataset_index``).
        classes: the columns of the logits that are scored (e.g. that head's slice of the union classes);
            None: all.
        num_classes: the number of scored columns the caller expects (e.g. ``data.num_classes``); a model that
            gives another number is refused on its first forward. None: not checked.
    """

    def __init__(self, model: nn.Module, device: torch.device, capture: str | None = None,
                 capture_dtype: str | torch.dtype | None = None, dataset_index: int | None = None,
                 classes: slice | None = None, num_classes: int | None = None) -> None:
        self.model, self.device = model, device
        self.dataset_index, self.classes, self.num_classes = dataset_index, classes, num_classes
        # a captured batch is padded: dataset_index must be padded with the other per-point inputs
        per_point = None if dataset_index is None else {"dataset_index": dataset_index}
        self.captured = build_captured(model, capture, capture_dtype, per_point)

    def model_inputs(self, sample: dict) -> dict:
        """The batch of one transformed sample, on the CPU, without its labels and index maps."""
        batch = collate_fn([sample])
        for key in NOT_INPUTS:
            batch.pop(key, None)
        if self.dataset_index is not None:
            batch["dataset_index"] = torch.full((len(batch["coord"]),), self.dataset_index, dtype=torch.long)
        return batch

    @torch.no_grad()
    def logits(self, sample: dict) -> Tensor:
        """(M, K) float32 logits of the M rows of one transformed sample (a scan or a fragment)."""
        batch = self.model_inputs(sample)
        if self.captured is not None:
            logits = self.captured(batch, device=self.device)     # planned on the host, then moved
        else:
            logits = self.model(to_device(batch, self.device))["seg_logits"]
        logits = logits.float() if self.classes is None else logits.float()[:, self.classes]
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise ValueError(f"Predictor: the model scores {logits.shape[1]} classes, {self.num_classes} are expected "
                             f"(data.num_classes); check that the weights belong to this config")
        return logits

    def scores(self, sample: dict) -> Tensor:
        """(M, K) softmax probabilities of the M rows of one transformed sample."""
        return F.softmax(self.logits(sample), dim=-1)

    def vote(self, data: dict) -> Tensor:
        """(N, K) scores of a test-mode scan's N points (``len(data["segment"])``), summed over its
        ``fragment_list``."""
        if not data["fragment_list"]:
            raise ValueError("Predictor.vote: the scan has an empty fragment_list (no test-time view)")
        votes = None
        for fragment in data["fragment_list"]:
            scores = self.scores(fragment)
            if votes is None:
                votes = scores.new_zeros(len(data["segment"]), scores.shape[1])
            votes.index_add_(0, torch.as_tensor(fragment["index"], device=votes.device).long(), scores)
        return votes

    def __call__(self, data: dict, vote: bool = False) -> Tensor:
        """(N, K) scores of every original point of ``data``: one pass over a transformed sample, or with
        ``vote`` the vote over a test-mode scan's fragments; through ``data["inverse"]`` where it has one."""
        scores = self.vote(data) if vote else self.scores(data)
        if "inverse" not in data:
            return scores
        return scores[torch.as_tensor(data["inverse"], device=scores.device).long()]
