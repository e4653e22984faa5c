"""``SemSegEvaluator``: validation mIoU, mAcc, allAcc and per-class IoU after each trainer epoch."""
from __future__ import annotations

import torch

from ...utils import comm
from ...utils.misc import intersection_and_union_torch, semseg_metrics
from .base import HOOKS, HookBase

__all__ = ["SemSegEvaluator"]


@HOOKS.register_module()
class SemSegEvaluator(HookBase):
    """Runs ``trainer.val_loader`` when ``cfg.evaluate``; predictions are mapped to every original point.

    Counts are summed over each process's scans and all-reduced once at the end, so they are exact for
    any number of scans per process and per batch (``data.collate_fn`` shifts ``inverse`` per sample, which
    Pointcept's collate does not), and no scan is counted twice (no sampler padding). ``val/loss`` is
    the mean over all batches of all processes.

    Sets ``comm_info['current_metric_value']`` (mIoU) and ``comm_info['current_metric_name']``.

    Args:
        write_cls_iou: also write ``val/cls_<i>-<name> IoU`` to TensorBoard.
    """

    def __init__(self, write_cls_iou: bool = False) -> None:
        self.write_cls_iou = write_cls_iou

    def after_epoch(self) -> None:
        if self.trainer.cfg.get("evaluate", True):
            self.eval()

    @torch.no_grad()
    def eval(self) -> dict:
        trainer, cfg = self.trainer, self.trainer.cfg
        num_classes, ignore = cfg.data.num_classes, cfg.data.get("ignore_index", -1)
        trainer.logger.info(">>>>>>>>>>>>>>>> Start Evaluation >>>>>>>>>>>>>>>>")
        model = trainer.model_without_ddp
        model.eval()
        counts = torch.zeros(3, num_classes, dtype=torch.float64)
        loss_sum = torch.zeros(2, dtype=torch.float64)
        for i, input_dict in enumerate(trainer.val_loader):
            input_dict = trainer.to_device(input_dict)
            output = model(input_dict)
            pred = output["seg_logits"].argmax(1)
            segment = input_dict["segment"]
            if "inverse" in input_dict:
                pred, segment = pred[input_dict["inverse"]], input_dict["origin_segment"]
            inter, union, target = intersection_and_union_torch(pred, segment, num_classes, ignore)
            counts += torch.stack([inter, union, target]).cpu().double()
            if "loss" in output:
                loss_sum += torch.tensor([float(output["loss"]), 1.0], dtype=torch.float64)
            trainer.logger.info(f"Test: [{i + 1}/{len(trainer.val_loader)}] Loss {float(output.get('loss', 0)):.4f}")
        counts, loss_sum = comm.all_reduce_sum(counts), comm.all_reduce_sum(loss_sum)
        metrics = semseg_metrics(*counts.numpy())
        loss = float(loss_sum[0] / max(loss_sum[1], 1))
        names = list(cfg.data.get("names") or [str(c) for c in range(num_classes)])
        trainer.logger.info(f"Val result: mIoU/mAcc/allAcc {metrics['mIoU']:.4f}/{metrics['mAcc']:.4f}/"
                            f"{metrics['allAcc']:.4f}.")
        for c in range(num_classes):
            trainer.logger.info(f"Class_{c}-{names[c]} Result: iou/accuracy "
                                f"{metrics['iou_class'][c]:.4f}/{metrics['acc_class'][c]:.4f}")
        if trainer.writer is not None:
            step = trainer.epoch + 1
            trainer.writer.add_scalar("val/loss", loss, step)
            for key in ("mIoU", "mAcc", "allAcc"):
                trainer.writer.add_scalar(f"val/{key}", metrics[key], step)
            if self.write_cls_iou:
                for c in range(num_classes):
                    trainer.writer.add_scalar(f"val/cls_{c}-{names[c]} IoU", metrics["iou_class"][c], step)
        trainer.logger.info("<<<<<<<<<<<<<<<<< End Evaluation <<<<<<<<<<<<<<<<<")
        trainer.comm_info["current_metric_value"] = metrics["mIoU"]
        trainer.comm_info["current_metric_name"] = "mIoU"
        model.train()
        return dict(metrics, loss=loss)

    def after_train(self) -> None:
        if self.trainer.completed and self.trainer.cfg.get("evaluate", True):
            self.trainer.logger.info(f"Best mIoU: {self.trainer.best_metric_value:.4f}")
