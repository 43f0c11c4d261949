"""Credit fidelity for chains of N roles (docs/method.md#teams-of-more-than-two-roles, the last point).

The tabular chains of :mod:`thinksolve_env.games` (``relay-chain``, ``free-rider``,
``complements``, ``substitutes``) give every quantity exactly: v(C) for every coalition, the
Shapley values, the marginals Δ_k = v(N) − v(N∖{k}), each role's advantage A_k(x, a_0 … a_k) and
its policy gradient. This module turns their sampled batches (with the counterfactual replays the
methods need) into one :class:`algorithms.credit.Outcomes` per collection
(:func:`chain_outcomes`: ``Outcomes.from_rewards(joint, roles=…, coalitions=…)``), runs every
credit method and estimator on it along the trainer's path, per role
(``rewards = method(outcomes)``, ``units = credit.role_units(outcomes, rewards[role], role,
grouping)``, ``adv = estimator(units.rewards, units.index)``), and scores each role as the
two-role lab does (:mod:`.fidelity`): sign accuracy, Spearman and sign agreement against A_k, the
gradient cosine against ∂J/∂θ_k, and, learning, the team's exact success after a number of
updates and the share of seeds at the optimum.

Per role it also reports what the method pays the role: ``<role>_credit_mean`` (the method's
reward, batch means), ``<role>_bonus_mean`` (its reward minus R_joint: 0 for shared, λ times the
counterfactual term for CCPO), ``<role>_advantage_mean`` and ``<role>_advantage_rms`` (the
estimator's output: how much the role is pushed), next to the exact Shapley value and marginal of the role at
the drawn policies (``<role>_exact_shapley``, ``<role>_exact_marginal``). A role whose exact
advantages are all equal (a free rider; a substitute) has no sign accuracy (``None``) and no
gradient to point at (its cosine is ``None``).

Collections (:class:`~.fidelity.Collection`): ``thoughts`` n texts of the first role per problem,
each continued ``answers_per_thought`` K times by the rest of the chain (flat n×1, tree (n/K)×K:
equal last-role generations); ``solo_samples`` m plays per problem of each coalition without the
first role. Each method's replay cost is counted from what it needs for this chain
(``method.needs_for(roles)``): ``replay_generations_per_episode`` (all roles' replays per joint
episode) and ``last_role_generations_per_problem`` (joint and replayed answers of the last role).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from agents import TabularSoftmaxPolicy
from thinksolve_env.games import ChainBatch, ChainGame, chain_values, coalition_generations, sample_chain

from .. import credit
from ..optim import estimators as estimator_registry
from .fidelity import (
    FLAT,
    TREE,
    Collection,
    MethodSpec,
    _advantages,
    _est_label,
    _scores,
    mean_ci,
    wilson_ci,
)

__all__ = [
    "chain_needs",
    "needed_coalitions",
    "chain_cost",
    "chain_outcomes",
    "apply_chain_method",
    "chain_role_advantages",
    "chain_fidelity_scores",
    "chain_learning_runs",
]

def chain_needs(method: credit.CreditMethod, roles: Sequence[str]) -> frozenset:
    """What ``method`` needs collected for the chain ``roles``: :func:`algorithms.credit.needs_for`
    (every built-in states it; it raises for a method that refuses chains)."""
    return credit.needs_for(method, tuple(roles))


def needed_coalitions(needs: Iterable[str], roles: Sequence[str]) -> list:
    """The coalitions a collection with ``needs`` replays, by size then chain order:
    :func:`algorithms.credit.chain_coalitions` (``solo``: N∖{first}, ``no_solver``: N∖{last},
    ``drop``: every N∖{k}, ``coalitions``: every proper non-empty one)."""
    return credit.chain_coalitions(tuple(roles), set(needs))


def chain_cost(roles: Sequence[str], coalitions: Iterable[frozenset], collection: Collection) -> dict:
    """Generations per problem of a collection with the replays of ``coalitions``: joint episodes
    E = n·K (the first role writes n texts), replays as :func:`~thinksolve_env.games.coalition_generations`."""
    roles = tuple(roles)
    E = collection.thoughts * collection.answers_per_thought
    per_role = dict.fromkeys(roles, E)
    per_role[roles[0]] = collection.thoughts
    replays = 0
    for c in coalitions:
        g = coalition_generations(roles, c, E, collection.solo_samples)
        replays += sum(g.values())
        for r, v in g.items():
            per_role[r] += v
    return {"generations_per_problem": sum(per_role.values()), "last_role_generations_per_problem": per_role[roles[-1]],
            "replay_generations_per_episode": replays / E, "generations_per_role": per_role}


def chain_outcomes(batch: ChainBatch, *, branches: int = 1, coalitions: Iterable[frozenset] | None = None) -> credit.Outcomes:
    """``batch`` as one credit batch: ``Outcomes.from_rewards(reward, roles=roles,
    coalitions=…, answers_per_thought=branches)`` (all of the batch's coalitions, or those of
    ``coalitions``)."""
    keep = batch.coalitions if coalitions is None else {c: batch.coalitions[c] for c in coalitions}
    return credit.Outcomes.from_rewards(batch.reward, roles=batch.roles, coalitions=keep, answers_per_thought=branches)


def apply_chain_method(method: credit.CreditMethod, outcomes: credit.Outcomes, per_batch: int, *,
                       methods: Sequence[credit.CreditMethod] | None = None) -> dict:
    """Credit rewards per role over ``outcomes`` (consecutive runs of ``per_batch`` groups form
    one batch): one call when the method is ``per_group``, else one per batch (``methods``: one
    instance per batch, e.g. per seed; otherwise ``method`` in order)."""
    if not methods and getattr(method, "per_group", False):
        return method(outcomes)
    roles = outcomes.roles
    outs = {r: [] for r in roles}
    for b in range(len(outcomes) // per_batch):
        inst = methods[b] if methods else method
        r = inst(outcomes[b * per_batch:(b + 1) * per_batch])
        for role in roles:
            outs[role].append(np.asarray(r[role], np.float64))
    return {role: np.concatenate(v) for role, v in outs.items()}


def chain_role_advantages(method: credit.CreditMethod, outcomes: credit.Outcomes, rewards: dict, estimator: str,
                          estimator_params: dict, n_batches: int) -> dict:
    """Per role: ``(advantages, units)`` as the trainer computes them (``role_units`` with the
    method's grouping, then the estimator; one call when it is group-local, else per batch)."""
    fn = estimator_registry.get(estimator)
    out = {}
    for role in outcomes.roles:
        units = credit.role_units(outcomes, rewards[role], role, credit.resolve_grouping(method, role))
        adv = _advantages(fn, estimator_params, np.asarray(units.rewards), np.asarray(units.index), n_batches)
        out[role] = (adv, units)
    return out


# --------------------------------------------------------------------------- per-role scores


def _unit_obs(game: ChainGame, batch: ChainBatch, k: int, episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observation and action of role k for the units whose episodes (flat positions) are given."""
    G, E, N = batch.actions.shape
    acts = batch.actions.reshape(G * E, N)[episodes]
    x = np.repeat(batch.x, E)[episodes]
    return game.obs[k][(x,) + tuple(acts[:, j] for j in range(k))], acts[:, k]


def _none(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, list):
        return None if all(isinstance(u, float) and not np.isfinite(u) for u in v) else v
    return v


def _role_scores(role: str, adv: np.ndarray, exact: np.ndarray, nb: int, grad_sampled: np.ndarray,
                 grad_exact: np.ndarray, credit_r: np.ndarray, joint: np.ndarray) -> dict:
    out = _scores(role, adv, exact, nb, grad_sampled, grad_exact)
    if np.max(np.abs(grad_exact)) < 1e-12:  # nothing to point at (a null player's exact gradient)
        out[f"{role}_grad_cosine"], out[f"{role}_grad_cosine_ci95"] = float("nan"), [float("nan")] * 2
    per = {"credit_mean": credit_r.reshape(nb, -1).mean(axis=1),
           "bonus_mean": (credit_r - joint).reshape(nb, -1).mean(axis=1),
           "advantage_mean": adv.reshape(nb, -1).mean(axis=1),
           "advantage_rms": np.sqrt((adv.reshape(nb, -1) ** 2).mean(axis=1))}
    for key, vals in per.items():
        m, ci = mean_ci(vals)
        out[f"{role}_{key}"], out[f"{role}_{key}_ci95"] = m, ci
    return {k: _none(v) for k, v in out.items()}


def _tables(game: ChainGame, rng: np.random.Generator, B: int, scale: float) -> list:
    return [TabularSoftmaxPolicy(o, m, batch=(B,), logits=rng.normal(0.0, scale, (B, o, m)))
            for o, m in zip(game.n_obs, game.n_actions)]


def _specs_for(game: ChainGame, specs: Sequence[MethodSpec]) -> list:
    """(spec, needs for the chain) of every spec; a method that refuses chains raises here."""
    return [(spec, chain_needs(spec.make(), game.roles)) for spec in specs]


def _grads(game: ChainGame, pols: list, batch: ChainBatch, adv: dict, B: int) -> list:
    out = []
    for k, role in enumerate(game.roles):
        a, units = adv[role]
        obs, acts = _unit_obs(game, batch, k, np.asarray(units.episodes))
        out.append(pols[k].score_gradient(obs.reshape(B, -1), acts.reshape(B, -1), np.asarray(a).reshape(B, -1)))
    return out


def chain_fidelity_scores(game: ChainGame, specs: Sequence[MethodSpec], estimators: Sequence[tuple[str, dict]],
                          collections: Sequence[Collection] = (FLAT, TREE), *, batches: int = 1000,
                          problems_per_batch: int = 4, seed: int = 0, policy_scale: float = 1.0) -> list[dict]:
    """Fidelity rows (collection × method × estimator) for the chain ``game``: random policies per
    batch (logits ~ N(0, ``policy_scale``²), one draw for every method), every method and
    estimator on the same sampled batches (the replays of every coalition any method needs)."""
    needs = _specs_for(game, specs)
    roles, N = game.roles, game.n_roles
    coalitions = needed_coalitions(set().union(*(n for _, n in needs)), roles)
    rows = []
    B, P = batches, problems_per_batch
    for ci, coll in enumerate(collections):
        rng = np.random.default_rng([seed, ci, 22])
        pols = _tables(game, rng, B, policy_scale)
        ex = chain_values(game, [p.probs for p in pols])
        bi = np.repeat(np.arange(B), P)
        E, K = coll.thoughts * coll.answers_per_thought, coll.answers_per_thought
        batch = sample_chain(game, [np.repeat(p.probs, P, axis=0) for p in pols], rng, groups=B * P, episodes=E,
                             samples=coll.solo_samples, coalitions=coalitions, branches=K)
        A = ex.advantages(batch, table=bi).reshape(B * P * E, N)  # exact A_k per episode
        exact_role = {role: (float(np.mean(ex.shapley[role])), float(np.mean(ex.marginal[role]))) for role in roles}
        for spec, need in needs:
            t0 = time.perf_counter()
            mine = needed_coalitions(need, roles)
            outcomes = chain_outcomes(batch, branches=K, coalitions=mine)
            method = spec.make()
            rewards = apply_chain_method(method, outcomes, P)
            credit_s = time.perf_counter() - t0
            cost = chain_cost(roles, mine, coll)
            for est_name, est_params in estimators:
                t1 = time.perf_counter()
                adv = chain_role_advantages(method, outcomes, rewards, est_name, est_params, B)
                grads = _grads(game, pols, batch, adv, B)
                row = {"game": game.name, "roles": N, "role_names": list(roles), "collection": coll.label,
                       "method": spec.label, "estimator": _est_label(est_name, est_params), "batches": B,
                       "problems_per_batch": P, "replay_generations_per_episode": cost["replay_generations_per_episode"],
                       "last_role_generations_per_problem": cost["last_role_generations_per_problem"],
                       "generations_per_problem": cost["generations_per_problem"],
                       "exact_value": float(np.mean(ex.J))}
                for k, role in enumerate(roles):
                    a, units = adv[role]
                    a = np.asarray(a, np.float64).reshape(B * P, -1)
                    target = A[np.asarray(units.episodes), k].reshape(B * P, -1)
                    row.update(_role_scores(role, a, target, B, grads[k], ex.grad[k], np.asarray(rewards[role]),
                                            batch.reward.reshape(-1)))
                    row[f"{role}_exact_shapley"], row[f"{role}_exact_marginal"] = exact_role[role]
                row["seconds"] = credit_s / len(estimators) + time.perf_counter() - t1
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- learning


def chain_learning_runs(game: ChainGame, specs: Sequence[MethodSpec], estimators: Sequence[tuple[str, dict]],
                        collections: Sequence[Collection] = (FLAT, TREE), *, seeds: int = 200, updates: int = 40,
                        problems_per_batch: int = 2, lr: float = 3.0, seed: int = 0, optimum_tol: float = 0.05) -> list[dict]:
    """Learning rows (collection × method × estimator): ``seeds`` runs at once from uniform
    policies, ``updates`` steps θ_k ← θ_k + lr·mean_u â_u∇log π_k for every role at once; the
    team's exact success after them and the share of seeds within ``optimum_tol`` of the optimum.
    Each cell starts from the same random streams (common random numbers across methods)."""
    rows = []
    S, P = seeds, problems_per_batch
    optimum = game.optimum()
    roles = game.roles
    needs = _specs_for(game, specs)
    for ci, coll in enumerate(collections):
        E, K = coll.thoughts * coll.answers_per_thought, coll.answers_per_thought
        for spec, need in needs:
            mine = needed_coalitions(need, roles)
            cost = chain_cost(roles, mine, coll)
            probe = spec.make()
            per_group = getattr(probe, "per_group", False)
            for est_name, est_params in estimators:
                t0 = time.perf_counter()
                rng = np.random.default_rng([seed, ci, 23])
                pols = [TabularSoftmaxPolicy(o, m, batch=(S,)) for o, m in zip(game.n_obs, game.n_actions)]
                methods = None if per_group else [spec.make() for _ in range(S)]
                method = probe if per_group else methods[0]
                for _ in range(updates):
                    batch = sample_chain(game, [np.repeat(p.probs, P, axis=0) for p in pols], rng, groups=S * P,
                                         episodes=E, samples=coll.solo_samples, coalitions=mine, branches=K)
                    outcomes = chain_outcomes(batch, branches=K)
                    rewards = apply_chain_method(method, outcomes, P, methods=methods)
                    adv = chain_role_advantages(method, outcomes, rewards, est_name, est_params, S)
                    for k, g in enumerate(_grads(game, pols, batch, adv, S)):
                        pols[k].ascend(g / (len(adv[roles[k]][0]) // S), lr)  # the mean over a seed's units
                final = chain_values(game, [p.probs for p in pols]).success
                m, ci95 = mean_ci(final)
                reached = int(np.sum(final >= optimum - optimum_tol))
                rows.append({"game": game.name, "roles": game.n_roles, "collection": coll.label, "method": spec.label,
                             "estimator": _est_label(est_name, est_params), "seeds": S, "updates": updates,
                             "success_after": m, "success_after_ci95": ci95, "optimum": optimum,
                             "reach_optimum": reached / S, "reach_optimum_ci95": wilson_ci(reached, S),
                             "last_role_generations": cost["last_role_generations_per_problem"] * P * updates,
                             "learning_seconds": time.perf_counter() - t0})
    return rows
