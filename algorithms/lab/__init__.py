"""The credit-fidelity lab: does a credit method's advantage point the right way? Scores against
exact ground truth on tabular games and Monte Carlo truth on real model text."""

from .fidelity import *  # noqa: F403
from .fidelity import __all__  # noqa: F401
