"""File permissions of report outputs."""

from __future__ import annotations

import os
from pathlib import Path


def readable(path: str | Path) -> None:
    """The atomic writer's temp files are private (0600); a report is meant to be shared or served."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
