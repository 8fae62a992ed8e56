"""File-writing helpers shared by the model files and the CLI's outputs."""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the process umask.

    ``tempfile.mkstemp`` creates its file with mode ``0o600`` so nobody else
    can read it while it is written; a file renamed into place from it must
    get the ordinary mode back, or users sharing a model or a scores file
    find it unreadable.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
