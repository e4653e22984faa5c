"""Train with a config: ``python tools/train.py --config-file CFG [--num-gpus N] [--options k=v ...]``.

Pointcept's entry point: the config is parsed once here, then ``launch`` runs ``main_worker`` in one
process, in one process per GPU, or in the processes torchrun started. A ``save_path`` that already holds a
run (``model/model_last.pth``, ``model/model_best.pth`` or a non-empty ``train.log``) is refused unless
``resume=True`` or ``overwrite=True``.
"""
from __future__ import annotations

import os

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.distill  # noqa: F401  (registers DistillTrainer and the KD losses)
import pointcept_distill.models  # noqa: F401  (registers models and losses)
from pointcept_distill.engine import (TRAINERS, default_argument_parser, default_config_parser, default_setup,
                                      launch)
from pointcept_distill.utils.config import OptionError


def main_worker(cfg) -> None:
    cfg = default_setup(cfg)
    trainer = TRAINERS.build(dict(type=cfg.train.type, cfg=cfg))
    trainer.train()


def main() -> None:
    args = default_argument_parser().parse_args()
    # only the first machine's (first torchrun process's) config.py is written: its seed is the one used
    first = args.machine_rank == 0 and os.environ.get("RANK", "0") == "0"
    try:  # an earlier run in save_path is refused before anything is written (unless resume or overwrite=True)
        cfg = default_config_parser(args.config_file, args.options, dump=first, for_training=True)
    except (FileExistsError, ImportError, OptionError) as err:  # ImportError: enable_wandb=True without wandb
        raise SystemExit(f"tools/train.py: {err}") from None
    launch(main_worker, num_gpus_per_machine=args.num_gpus, num_machines=args.num_machines,
           machine_rank=args.machine_rank, dist_url=args.dist_url, cfg=(cfg,))


if __name__ == "__main__":
    main()
