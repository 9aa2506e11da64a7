"""shiftbench: measure what distribution shift costs a text model."""

__version__ = "0.1.0"
