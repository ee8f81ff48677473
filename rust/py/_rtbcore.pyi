"""Stubs of the PyO3 module _rtbcore (rust/py/src). Users import rtbcore, never this module."""

# every name the module exports (the areas below add theirs here at integration)
__all__ = ["__version__"]
__version__: str

# --- clearing.rs ---

# --- queue.rs ---

# --- ring.rs ---

# --- engine.rs ---
