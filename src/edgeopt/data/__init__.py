"""Dataset preparation: read a source, split it deterministically, cache compact uint8 arrays."""

from edgeopt.data.arrays import DatasetArrays, Split, load_meta, load_split

__all__ = ["DatasetArrays", "Split", "load_split", "load_meta"]
