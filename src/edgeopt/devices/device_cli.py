"""`edgeopt device setup NAME | check [NAME...]` (the implementation lives in edgeopt.devices.cli)."""

from edgeopt.devices.cli import add_device_arguments as add_arguments
from edgeopt.devices.cli import run_device as run

__all__ = ["add_arguments", "run"]
