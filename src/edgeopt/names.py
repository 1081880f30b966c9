"""Names that become folder names under `results/` (data sets, devices, variants, settings, models).

A name is one path component: "." or ".." (or a "/") would move an artifact out of its folder, so
such names are refused with one line naming the config key. The JSON schema uses `NAME_PATTERN`
(through `$defs/name`); code that takes names from elsewhere calls `check_name`.
"""

from __future__ import annotations

import re

from edgeopt.errors import EdgeoptError

#: letters, digits, `.`, `_`, `-`, but never only dots ("." and ".." are the directory itself and its parent)
NAME_PATTERN = r"^(?!\.+$)[A-Za-z0-9_.-]+$"
NAME_RULE = "letters, digits, . _ -; not only dots: it names a folder"
_NAME_RE = re.compile(NAME_PATTERN)


def is_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME_RE.match(value))


def check_name(value: object, key: str) -> str:
    """`value` when it is a usable folder name; else raise naming `key`."""
    if not is_name(value):
        raise EdgeoptError(f"config: {key}: {value!r} is not a usable name ({NAME_RULE})")
    return str(value)


def check_path_component(value: object, key: str) -> str:
    """A looser rule for names that may hold other characters (`torchvision:resnet18`): still exactly one
    path component, never "." or "..", no path separator or NUL."""
    s = str(value)
    if not s or set(s) <= {"."} or any(c in s for c in "/\\\0"):
        raise EdgeoptError(f"config: {key}: {value!r} cannot name a folder (no /, \\, and not only dots)")
    return s
