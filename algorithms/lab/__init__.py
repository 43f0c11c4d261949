"""The credit-fidelity lab: does a credit method's advantage point the right way? Scores against
exact ground truth on tabular games and Monte Carlo truth on real model text.

The lab sits outside the core: it uses only the public API of ``algorithms`` (package-level
names; the credit methods' ``per_group`` and the estimators' ``group_local`` for its speed) and
nothing in the core imports it (``tests/test_lab_boundary.py``)."""

from . import chains, fidelity
from .chains import *  # noqa: F403
from .fidelity import *  # noqa: F403

__all__ = [*fidelity.__all__, *chains.__all__]
