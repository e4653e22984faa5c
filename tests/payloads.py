"""A pickle payload for the "no code runs from data files" tests: unpickling it writes a marker file."""
from __future__ import annotations

import pathlib


class WritesMarker:
    """Pickles as a call of ``Path.write_text(marker, "x")``: any loader that executes pickled code creates
    ``marker``; a loader that only accepts data refuses it."""

    def __init__(self, marker: str | pathlib.Path) -> None:
        self.marker = pathlib.PosixPath(marker)

    def __reduce__(self):
        return pathlib.Path.write_text, (self.marker, "x")
