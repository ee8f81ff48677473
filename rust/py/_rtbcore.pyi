"""Stubs of the PyO3 module _rtbcore (rust/py/src). Users import rtbcore, never this module."""

__version__: str

# --- clearing.rs ---

# --- queue.rs ---

# --- ring.rs ---

# --- engine.rs ---
