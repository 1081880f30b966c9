"""Read torch files without running code from them: `torch.load(weights_only=True)`, one-line errors.

Every torch file edgeopt reads (model files, training checkpoints) may come from someone else: a
full unpickle would run whatever the file asks for. A weights-only load reads tensors and plain data
only and refuses a file that names any other Python object, before anything in it is called.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from edgeopt.errors import EdgeoptError


def load_plain(path: str | Path, what: str, map_location: str | torch.device | None = "cpu") -> Any:
    """The tensors and plain data in `path`; raise one line naming the file when it is missing, not a
    torch file, or holds other Python objects (an older whole-module edgeopt file included)."""
    path = Path(path)
    if not path.exists():
        raise EdgeoptError(f"{path}: {what} missing")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise EdgeoptError(
                f"{path}: refused: this {what} holds Python objects ({found.group(1)}) that loading would have to "
                "run; only tensors and plain data are read (a file from an older edgeopt: delete it and re-run "
                "the stage that makes it)"
            ) from None
        detail = [ln.strip() for ln in text.split("WeightsUnpickler error:", 1)[-1].splitlines() if ln.strip()]
        raise EdgeoptError(f"{path}: not a readable {what} ({detail[0] if detail else 'unpickling failed'})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file that is not its format
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EdgeoptError(f"{path}: not a readable {what} ({type(exc).__name__}: {first})") from None
