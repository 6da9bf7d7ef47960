"""labctl: a lab-automation controller for protective overlayers on Li-metal anodes."""

__version__ = "0.1.0"
