"""A user-defined credit method, registered and run through the credit comparison.

``event_both`` extends CCPO's event bonus (docs/method.md#ccpo) from the Thinker to the Solver: the
Solver earns a bonus when the team is right although the Thinker's text alone was wrong (it
turned a failed thought into a correct answer) and a penalty when the team is wrong although
the thought alone was right (it spoiled a correct thought).

    r_T = R + λ·([R > 0 and b < 0] − [R < 0 and b > 0])            (CCPO event)
    r_S = R + λ·([R > 0 and R_¬S < 0] − [R < 0 and R_¬S > 0])

Use it from Python (``import examples.event_both`` then ``credit.get("event_both")``), in
training (``thinksolve train --preset tiny-brief --plugin examples/event_both.py --credit event_both
--out runs/mine``) or in the benchmark (``python benchmarks/credit_comparison.py --plugin
examples/event_both.py --methods shared event_both --optimizers gspo --seeds 0 --steps 12
--eval-every 6 --eval-samples 1 --runs runs/bench-mine``, about a minute; without the flags after
``--methods`` the full grid, 30 runs of 150 steps). The paths are relative to the clone root, where
the README's commands run; a run records the plugin by its absolute path, so ``--resume`` finds it
from any folder.
"""

from __future__ import annotations

import numpy as np

from algorithms import EpisodeGroup, credit


@credit.register("event_both", requires={"solo", "no_solver"}, replace=True)
def event_both(groups: list[EpisodeGroup], lam: float = 0.2) -> dict[str, np.ndarray]:
    R = credit.joint_rewards(groups)
    b = credit.solo_baselines(groups)  # R_¬T per joint episode: its problem's solo mean
    alone = credit.no_solver_rewards(groups)  # R_¬S: the episode's thought verified alone
    thinker = R + lam * ((R > 0) & (b < 0)).astype(np.float64) - lam * ((R < 0) & (b > 0)).astype(np.float64)
    solver = R + lam * ((R > 0) & (alone < 0)).astype(np.float64) - lam * ((R < 0) & (alone > 0)).astype(np.float64)
    return {"thinker_0": thinker, "solver_0": solver}
