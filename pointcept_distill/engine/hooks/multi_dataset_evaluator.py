"""``MultiDatasetEvaluator``: validation metrics per dataset of a joint run (``ConcatDataset`` val set).

Every validation point carries ``dataset_index`` (``TagDataset``). Dataset ``d`` is scored on its own
points over its own classes: in the ``"heads"`` label space its slice of the union ids (its native
classes), in the ``"common"`` one the common classes it labels. The selection metric
(``comm_info['current_metric_value']``) is the mean of the datasets' mIoUs.
"""
from __future__ import annotations

import torch

from ...data.label_space import COMMON_NAMES, NATIVE_NAMES, common_classes, union_offsets
from ...utils import comm
from ...utils.misc import intersection_and_union_torch, semseg_metrics
from .base import HOOKS, HookBase

__all__ = ["MultiDatasetEvaluator", "dataset_class_ids"]


def dataset_class_ids(datasets: list[str], label_space: str) -> list[tuple[list[int], list[str]]]:
    """For each dataset, the class ids it is scored on and their names."""
    if label_space == "heads":
        return [(list(range(o, o + len(NATIVE_NAMES[d]))), list(NATIVE_NAMES[d]))
                for d, o in zip(datasets, union_offsets(datasets))]
    if label_space == "common":
        return [(common_classes(d), [COMMON_NAMES[c] for c in common_classes(d)]) for d in datasets]
    raise ValueError(f"MultiDatasetEvaluator: data.label_space={label_space!r}, expected 'heads' or 'common'")


@HOOKS.register_module()
class MultiDatasetEvaluator(HookBase):
    """Per-dataset mIoU / mAcc / allAcc / class IoU after each trainer epoch (config ``data.datasets``,
    ``data.label_space``, as ``joint_data_config`` writes them).

    Args:
        write_cls_iou: also write ``val/<dataset>/cls_<name> IoU`` to TensorBoard.
    """

    def __init__(self, write_cls_iou: bool = False) -> None:
        self.write_cls_iou = write_cls_iou

    def after_epoch(self) -> None:
        if self.trainer.cfg.get("evaluate", True):
            self.eval()

    def _counts(self, num_datasets: int, num_classes: int, ignore: int) -> tuple[torch.Tensor, torch.Tensor]:
        trainer = self.trainer
        model = trainer.model_without_ddp
        counts = torch.zeros(num_datasets, 3, num_classes, dtype=torch.float64)
        loss_sum = torch.zeros(2, dtype=torch.float64)
        for input_dict in trainer.val_loader:
            input_dict = trainer.to_device(input_dict)
            if "dataset_index" not in input_dict:
                raise KeyError("MultiDatasetEvaluator: validation batches have no 'dataset_index' (add "
                               "TagDataset to the val pipeline and 'dataset_index' to Collect's keys)")
            output = model(input_dict)
            pred, segment, which = output["seg_logits"].argmax(1), input_dict["segment"], input_dict["dataset_index"]
            if "inverse" in input_dict:
                inverse = input_dict["inverse"]
                pred, segment, which = pred[inverse], input_dict["origin_segment"], which[inverse]
            for d in range(num_datasets):
                keep = which == d
                inter, union, target = intersection_and_union_torch(pred[keep], segment[keep], num_classes, ignore)
                counts[d] += torch.stack([inter, union, target]).cpu().double()
            if "loss" in output:
                loss_sum += torch.tensor([float(output["loss"]), 1.0], dtype=torch.float64)
        return comm.all_reduce_sum(counts), comm.all_reduce_sum(loss_sum)

    @torch.no_grad()
    def eval(self) -> dict:
        trainer, cfg = self.trainer, self.trainer.cfg
        datasets, label_space = list(cfg.data.datasets), cfg.data.label_space
        layout = dataset_class_ids(datasets, label_space)
        trainer.logger.info(">>>>>>>>>>>>>>>> Start Evaluation (per dataset) >>>>>>>>>>>>>>>>")
        model = trainer.model_without_ddp
        model.eval()
        counts, loss_sum = self._counts(len(datasets), cfg.data.num_classes, cfg.data.get("ignore_index", -1))
        results: dict[str, dict] = {}
        for d, (name, (ids, names)) in enumerate(zip(datasets, layout)):
            m = semseg_metrics(*(counts[d, k, ids].numpy() for k in range(3)))
            results[name] = dict(m, iou_class=dict(zip(names, m["iou_class"].tolist())),
                                 acc_class=dict(zip(names, m["acc_class"].tolist())))
            trainer.logger.info(f"Val {name}: mIoU/mAcc/allAcc {m['mIoU']:.4f}/{m['mAcc']:.4f}/{m['allAcc']:.4f}")
            for c, cname in enumerate(names):
                trainer.logger.info(f"  {name} {cname}: iou/accuracy {m['iou_class'][c]:.4f}/{m['acc_class'][c]:.4f}")
        mean_miou = sum(r["mIoU"] for r in results.values()) / len(results)
        loss = float(loss_sum[0] / max(loss_sum[1], 1))
        trainer.logger.info(f"Val result: mean of the datasets' mIoU {mean_miou:.4f}")
        if trainer.writer is not None:
            self._write(results, mean_miou, loss)
        trainer.logger.info("<<<<<<<<<<<<<<<<< End Evaluation <<<<<<<<<<<<<<<<<")
        trainer.comm_info["current_metric_value"] = mean_miou
        trainer.comm_info["current_metric_name"] = "mIoU"
        model.train()
        return dict(per_dataset=results, mIoU=mean_miou, loss=loss)

    def _write(self, results: dict[str, dict], mean_miou: float, loss: float) -> None:
        writer, step = self.trainer.writer, self.trainer.epoch + 1
        writer.add_scalar("val/loss", loss, step)
        writer.add_scalar("val/mIoU", mean_miou, step)
        for name, r in results.items():
            for key in ("mIoU", "mAcc", "allAcc"):
                writer.add_scalar(f"val/{name}/{key}", r[key], step)
            if self.write_cls_iou:
                for cname, iou in r["iou_class"].items():
                    writer.add_scalar(f"val/{name}/cls_{cname} IoU", iou, step)

    def after_train(self) -> None:
        if self.trainer.completed and self.trainer.cfg.get("evaluate", True):
            self.trainer.logger.info(f"Best mean mIoU: {self.trainer.best_metric_value:.4f}")
