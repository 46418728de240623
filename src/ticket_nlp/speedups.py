"""Which implementation runs the per-ticket hot loops: the C extension (``_speedups``, built by
``pip install`` when a compiler is present) or the Python it was ported from.

Callers read ``speedups.native`` at call time, so tests can switch it off and compare. Set
``TICKET_NLP_PURE_PYTHON=1`` to run without the extension.
"""

from __future__ import annotations

import os
from types import ModuleType

native: ModuleType | None
if os.environ.get("TICKET_NLP_PURE_PYTHON"):
    native = None
else:
    try:
        from ticket_nlp import _speedups as native
    except ImportError:  # no compiler at install time: the Python loops give the same results
        native = None
