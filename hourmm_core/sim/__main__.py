"""``python -m hourmm_core.sim``: the same as ``hourmm sim`` (end-to-end simulation)."""
from __future__ import annotations

import sys

from hourmm_core.sim.orchestrator import main

if __name__ == "__main__":
    sys.exit(main())
