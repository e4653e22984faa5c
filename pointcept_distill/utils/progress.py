"""Console progress of the long tools: which stage runs, its number among all stages, the time left.

- ``StageProgress``: ``[tool] stage k/N: <what> (elapsed h:mm:ss, about h:mm:ss left)`` when a stage starts;
  the time left is the mean duration of the finished stages times the stages still to run.
- ``last_progress``: the newest ``Train: [e/E][i/I] ... Remain T`` or ``Test: [i/N] ... Remain T`` line of a log
  (what ``IterationTimer`` and the testers write), shortened for a parent process to print.
- ``wait_with_progress``: wait for child processes that write such logs, printing each one's progress at an
  interval instead of staying silent until they end.
"""
from __future__ import annotations

import datetime
import re
import subprocess
import time
from typing import Callable, Mapping

__all__ = ["StageProgress", "last_progress", "wait_with_progress", "format_seconds"]

_TRAIN = re.compile(r"Train: \[(\d+)/(\d+)\]\[(\d+)/(\d+)\].*?Remain (\d+:\d\d:\d\d)")
_TEST = re.compile(r"Test: (?:\S+ )?\[(\d+)/(\d+)\].*?Remain (\d+:\d\d:\d\d)")
_STAGE = re.compile(r"\[[\w.-]+\] stage \d+/\d+: .*")


def format_seconds(seconds: float) -> str:
    """``h:mm:ss``."""
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class StageProgress:
    """Prints a line when each of ``total`` stages starts (``total`` may grow with ``add``).

    Args:
        tool: the name in brackets at the start of each line.
        total: the number of stages planned.
        log: where lines go (default: ``print`` with flush).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, tool: str, total: int, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.tool, self.total, self.clock = tool, int(total), clock
        self.log = log or (lambda line: print(line, flush=True))
        self.started = clock()
        self.count = 0                    # stages started
        self._current: float | None = None
        self.durations: list[float] = []  # of the finished stages

    def add(self, stages: int) -> None:
        """Plan ``stages`` more stages (known only once earlier ones ran)."""
        self.total += int(stages)

    def _finish_current(self) -> None:
        if self._current is not None:
            self.durations.append(self.clock() - self._current)
            self._current = None

    def left(self) -> float | None:
        """Seconds left at the mean pace of the finished stages (None before the first one finished)."""
        if not self.durations:
            return None
        return sum(self.durations) / len(self.durations) * max(self.total - len(self.durations), 0)

    def start(self, what: str) -> str:
        """A new stage starts (the previous one, if any, is finished); returns the printed line."""
        self._finish_current()
        self.count += 1
        self.total = max(self.total, self.count)
        left = self.left()
        eta = f"about {format_seconds(left)} left" if left is not None else "time left known after this stage"
        line = (f"[{self.tool}] stage {self.count}/{self.total}: {what} "
                f"(elapsed {format_seconds(self.clock() - self.started)}, {eta})")
        self.log(line)
        self._current = self.clock()
        return line

    def done(self, what: str = "done") -> str:
        """The last stage finished; prints and returns the closing line."""
        self._finish_current()
        line = f"[{self.tool}] {what}: {self.count} stage(s) in {format_seconds(self.clock() - self.started)}"
        self.log(line)
        return line


def last_progress(text: str) -> str:
    """The newest progress of a log: ``epoch e/E, iteration i/I, T left``, ``scan i/N, T left`` or a
    ``[tool] stage k/N: ...`` line, whichever comes last; ``""`` if none."""
    found: list[tuple[int, str]] = []
    train = list(_TRAIN.finditer(text))
    if train:
        e, n_e, i, n_i, remain = train[-1].groups()
        found.append((train[-1].start(), f"epoch {e}/{n_e}, iteration {i}/{n_i}, {remain} left"))
    test = list(_TEST.finditer(text))
    if test:
        i, n, remain = test[-1].groups()
        found.append((test[-1].start(), f"testing scan {i}/{n}, {remain} left"))
    stage = list(_STAGE.finditer(text))
    if stage:
        found.append((stage[-1].start(), stage[-1].group(0)))
    return max(found)[1] if found else ""


def wait_with_progress(procs: Mapping[str, tuple[subprocess.Popen, str]], every: float = 30.0,
                       log: Callable[[str], None] | None = None, poll: float = 0.5) -> dict[str, int]:
    """Wait for every ``name -> (process, its log file)``; every ``every`` s print ``  [name] <progress>`` of
    each running one. Returns the exit codes."""
    log = log or (lambda line: print(line, flush=True))
    shown = time.monotonic()
    while any(proc.poll() is None for proc, _ in procs.values()):
        time.sleep(poll)
        if time.monotonic() - shown < every:
            continue
        shown = time.monotonic()
        for name, (proc, path) in procs.items():
            if proc.poll() is None:
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        progress = last_progress(f.read())
                except OSError:
                    progress = ""
                log(f"  [{name}] {progress or 'starting'}")
    return {name: proc.wait() for name, (proc, _) in procs.items()}
