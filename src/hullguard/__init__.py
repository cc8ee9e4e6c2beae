"""hullguard: one pipeline from container image to findings."""

__version__ = "0.1.0"
