"""Files a command writes (plots, profiles, LPs): checked before any work, so a run of minutes
does not end in an error about a folder that was never there."""

from __future__ import annotations

import os
from pathlib import Path

from fairwatt.errors import FairwattError


class OutputPathError(FairwattError):
    """An output file that cannot be written: its folder is missing, or it is a folder itself."""


def output_file(path: str | Path, option: str) -> Path:
    """``path`` when a file can be written there; :class:`OutputPathError` naming ``option`` if not."""
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{option} {target}: is a directory; give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise OutputPathError(f"{option} {target}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"{option} {target}: the directory {folder} is not writable")
    return target
