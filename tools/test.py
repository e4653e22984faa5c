"""Test a checkpoint: ``python tools/test.py --config-file CFG --options save_path=DIR weight=FILE``.

Runs ``cfg.test`` (``SemSegTester`` by default) in one process, one per GPU, or under torchrun; writes
``save_path/result/`` and ``save_path/test.log``. The experiment's ``config.py`` is not rewritten.
"""
from __future__ import annotations

import pointcept_distill.data  # noqa: F401  (registers datasets and transforms)
import pointcept_distill.distill  # noqa: F401  (registers DistillTrainer and the KD losses; no tester or model)
import pointcept_distill.models  # noqa: F401  (registers models and losses)
from pointcept_distill.engine import (TESTERS, default_argument_parser, default_config_parser, default_setup,
                                      launch)
from pointcept_distill.utils.config import OptionError


def main_worker(cfg) -> None:
    cfg = default_setup(cfg)
    tester = TESTERS.build(dict(cfg=cfg, **cfg.test))
    tester.test()


def main() -> None:
    args = default_argument_parser().parse_args()
    try:
        cfg = default_config_parser(args.config_file, args.options, dump=False)
    except OptionError as err:  # a bad --options value: the message says which and what is expected
        raise SystemExit(f"tools/test.py: {err}") from None
    launch(main_worker, num_gpus_per_machine=args.num_gpus, num_machines=args.num_machines,
           machine_rank=args.machine_rank, dist_url=args.dist_url, cfg=(cfg,))


if __name__ == "__main__":
    main()
