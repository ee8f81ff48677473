"""Stubs of the Cython module rtbcore._fastpath (src/_fastpath.pyx and its .pxi includes)."""

# --- clearing.pxi ---

# --- pacing.pxi ---

# --- credit.pxi ---

# --- shading.pxi ---
