# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, autotestdict=False
"""rtbcore._fastpath: Cython kernels for the per-request hot path.

One extension module, assembled from one include file per area so that each area's kernels live
beside each other: the argument checks they share, clearing helpers (the per-auction object
API), the pacers (one file each under pacing/), the credit pool, the spend ledger of the shared budget and bid shading. Users import
``rtbcore``, never this module.
"""

include "_checks.pxi"
include "clearing.pxi"
include "pacing/common.pxi"
include "pacing/cap.pxi"
include "pacing/multiplier.pxi"
include "pacing/throttle.pxi"
include "pacing/profile.pxi"
include "pacing/pid.pxi"
include "pacing/value.pxi"
include "credit.pxi"
include "ledger.pxi"
include "shading.pxi"
include "shader.pxi"
