"""The project logger: console on every process, a log file on the main process only."""
from __future__ import annotations

import logging
import os
import sys

from .comm import get_rank

__all__ = ["get_root_logger", "LOGGER_NAME"]

LOGGER_NAME = "pointcept_distill"
_FORMAT = "[%(asctime)s %(levelname)s %(filename)s line %(lineno)d %(process)d] %(message)s"


def get_root_logger(log_file: str | None = None, file_mode: str = "a",
                    log_level: int = logging.INFO) -> logging.Logger:
    """Return the project logger; the first call with ``log_file`` adds a file handler (main process only).

    Later calls with another ``log_file`` replace the file handler, so a tester started after training
    writes to its own file.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    rank = get_rank()
    if not any(getattr(h, "_pcd_console", False) for h in logger.handlers):
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S"))
        console._pcd_console = True  # type: ignore[attr-defined]
        logger.addHandler(console)
    if log_file is not None and rank == 0:
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            if handler.baseFilename != os.path.abspath(log_file):
                logger.removeHandler(handler)
                handler.close()
        if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            file_handler = logging.FileHandler(log_file, file_mode)
            file_handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%m/%d %H:%M:%S"))
            logger.addHandler(file_handler)
    logger.setLevel(log_level if rank == 0 else logging.ERROR)
    return logger

