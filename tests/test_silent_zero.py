"""No setting silently trains nothing: for every built-in credit method and advantage estimator,
on flat (one answer per thought) and tree collections, either each role gets a non-zero advantage
whenever its rewards vary, or the configuration is refused with an error that says what to set.

The groups are built by hand with outcomes that vary inside every group and every thought's
sibling answers, and the advantages are computed the way the trainer does (``role_units`` with
the method's grouping, then the estimator)."""

from __future__ import annotations

import numpy as np
import pytest

from algorithms import EpisodeGroup, credit, estimators, preset
from algorithms.config import ConfigError, apply_overrides
from algorithms.credit import resolve_grouping, role_units
from algorithms.train.preflight import check_collection, preflight
from thinksolve_env import ROLES

METHODS = ["shared", "ccpo", "ccpo:margin", "ccpo:normalized", "ccpo:value", "sepo", "difference", "shapley", "tree"]
ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++-baseline"]
RATING = ['{"outcome": "correct", "pair": [0.7, 0.3], "brief_reason": "plan"}',
          '{"outcome": "wrong", "pair": [0.2, 0.8], "brief_reason": "solver"}',
          '{"outcome": "wrong", "pair": [0.9, 0.1], "brief_reason": "thinker"}',
          '{"outcome": "correct", "pair": [0.4, 0.6], "brief_reason": "both"}']


def groups(K: int, seed: int = 0) -> list[EpisodeGroup]:
    """Three problems, four thoughts each with K answers; rewards vary within every problem and,
    for K >= 2, within every thought's answers; counterfactuals and ratings vary too."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        n = 4 * K
        # four thoughts: both answers right, the first right, both wrong, the second right (K = 2);
        # with K = 1, two right and two wrong; the thoughts in a random order per problem
        thoughts = [[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]] if K > 1 else [[1.0], [-1.0], [1.0], [-1.0]]
        joint = np.concatenate([thoughts[i] for i in rng.permutation(4)])
        out.append(EpisodeGroup.from_rewards(
            list(joint), solo=list(rng.choice([1.0, -1.0], 4, p=[0.3, 0.7])), answers_per_thought=K,
            no_solver=list(rng.choice([1.0, -1.0], n)),
            ratings=[{r: RATING[int(rng.integers(4))] for r in ROLES} for _ in range(n)]))
    return out


def build(method: str):
    name, _, variant = method.partition(":")
    return credit.get(name, **({"variant": variant} if variant else {}))


def advantages(method: str, estimator: str, gs: list[EpisodeGroup]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    m = build(method)
    rewards = m(gs)
    out = {}
    for role in ROLES:
        units = role_units(gs, rewards[role], role, resolve_grouping(m, role))
        lengths = [8] * len(units.rewards)
        adv = estimators.get(estimator)(units.rewards, units.index, lengths=lengths)
        out[role] = (np.asarray(units.rewards), np.asarray(units.index), adv.detach().numpy())
    return out


def config(method: str, estimator: str, K: int):
    name, _, variant = method.partition(":")
    return apply_overrides(preset("tiny-arith"), [f"credit.name={name}", f"optim.estimator={estimator}",
                                                  f"rollout.answers_per_thought={K}", "warm_start.enabled=false"]
                           + ([f"credit.params.variant={variant}"] if variant else []))


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("method", METHODS)
def test_each_role_learns_from_varying_rewards_or_the_setting_is_refused(method, estimator, K):
    assert {m.partition(":")[0] for m in METHODS} <= set(credit.available())
    assert set(ESTIMATORS) <= set(estimators.available())
    cfg = config(method, estimator, K)
    m = build(method)
    adv = advantages(method, estimator, groups(K))
    try:
        check_collection(m, cfg)
    except ConfigError as e:
        # refused: and rightly, some role's advantage really is 0 everywhere although its rewards vary
        assert "rollout.answers_per_thought" in str(e) and "learn nothing" in str(e)
        silent = [r for r, (rew, _, a) in adv.items() if np.ptp(rew) > 0 and not np.any(np.abs(a) > 1e-9)]
        assert silent, f"{method}/{estimator}/K={K} was refused but every role gets a non-zero advantage"
        return
    for role, (rew, _, a) in adv.items():
        assert np.ptp(rew) > 0, f"the test's rewards should vary for {role}"
        assert np.any(np.abs(a) > 1e-9), f"{method} + {estimator}, K={K}: {role}'s advantage is 0 everywhere"


def test_a_tree_method_on_a_flat_collection_is_refused_before_anything_loads():
    with pytest.raises(ConfigError, match=r"credit 'tree' compares each solver_0 answer .* rollout.answers_per_thought=1"):
        preflight(config("tree", "grpo", 1))
    assert preflight(config("tree", "grpo", 4)).credit.name == "tree"
