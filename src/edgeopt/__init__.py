"""edgeopt: from data to a measured, deployable CNN on embedded targets."""

__version__ = "0.1.0"
