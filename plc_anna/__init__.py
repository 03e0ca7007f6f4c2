"""plc-anna: keep analog neural networks accurate in factory control."""

__version__ = "0.1.0"
