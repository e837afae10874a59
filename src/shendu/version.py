"""shendu's version, in a module of its own so that every package can read it without importing ``shendu``."""

__version__ = "0.1.0"
