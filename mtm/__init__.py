"""mtm: multi-task masking (MtM) for neural spiking data, after Zhang et al. 2024 (arXiv 2407.14668).

The package holds every piece of logic the book teaches: ``mtm.data`` (the Session type, synthetic
sessions with ground truth, IBL loading through ONE, NWB loading).
"""

import os

__version__ = "0.1.0"


def smoke() -> bool:
    """True when ``MTM_SMOKE`` is set to anything but '' or '0': chapters and CI then use small settings."""
    return os.environ.get("MTM_SMOKE", "") not in ("", "0")
