"""Credit fidelity: does a credit method's advantage point the right way? (docs/method.md#credit-against-ground-truth)

The tabular games of :mod:`thinksolve_env.games` give every quantity exactly. This module turns
their sampled batches into credit batches (:func:`game_outcomes`, an
:class:`algorithms.credit.Outcomes`) whose groups are the same
:class:`~algorithms.rollout.EpisodeGroup` objects that :func:`~algorithms.rollout.collect_groups`
makes (thought-major, ``Episode.thought_index``, ``solo_rewards``, ``no_solver_reward``, SEPO
``ratings`` as numeric pairs), so every built-in and registered credit method, and every
estimator, runs on them unchanged; then it scores the advantages against the exact ones.

Per role the trainer's path is followed: ``rewards = method(groups)``,
``units = credit.role_units(groups, rewards[role], role, grouping)``,
``adv = estimator(units.rewards, units.index)``. Thinker units are the sampled thoughts (exact
target A_T(x, t)), Solver units the joint episodes (exact target A_S(x, t, a)).

Scores (each per sampled batch, then mean and a 95% interval, mean ± 1.96·sd/√batches):

* ``sign_accuracy`` — pairwise, within each problem group: over pairs of units (u, v) with
  A_u ≠ A_v, the share with sign(â_u − â_v) = sign(A_u − A_v); a tie in â counts one half;
* ``spearman`` — within each group, the rank correlation of â with A (groups where A is constant
  are skipped; a constant â scores 0);
* ``sign_agreement`` — per unit, sign(â) = sign(A) (â = 0 counts one half; A = 0 skipped): unlike
  the two scores above it sees an estimator's baseline;
* ``grad_cosine`` — the cosine between the batch's sampled policy gradient
  Σ_u â_u·∇_θ log π(action_u | obs_u) and the exact gradient ∂J/∂θ of that role.

Within a group, every group-centred estimator (and REINFORCE++'s batch whitening) is an
increasing affine map of the rewards, so ``sign_accuracy`` and ``spearman`` depend on the credit
method alone; ``sign_agreement``, the gradient cosine and learning also see the estimator.

Fidelity batches are drawn at random policies (logits ~ N(0, ``policy_scale``²) per batch, one
draw shared by every method: a paired comparison), so scores do not hinge on one symmetric point.

Learning (:func:`learning_runs`): S seeds at once, each with its own tabular softmax policies
(uniform at the start), both roles updated every step by θ ← θ + lr·mean_u â_u∇log π; after N
updates the exact team success and the share of seeds within ``optimum_tol`` of the game's optimum.

Collections are compared at equal Solver generations: ``flat`` n×1 against ``tree`` (n/K)×K.

Speed without thinner statistics, through public capabilities of the core only (the lab
re-implements no credit method and no estimator; ``tests/test_lab_boundary.py`` holds it to the
public API):

* every method of a collection sees one set of sampled batches, as one
  :class:`algorithms.credit.Outcomes` (:func:`game_outcomes`: the game's arrays). The credit
  helpers read its arrays, so the built-ins that read the groups only through them never build
  an episode; a method that iterates the groups (SEPO, which reads the ratings; a registered
  method that reads episodes) gets real :class:`~algorithms.rollout.EpisodeGroup` objects, built
  once per batch on first use;
* a method whose :attr:`~algorithms.credit.CreditMethod.per_group` is true (every built-in but
  ``ccpo`` normalized) is called once over all batches' groups, any other batch by batch, with
  one instance per seed in the learning runs (a registered method is ``per_group = False``
  unless it says otherwise);
* an estimator whose ``group_local`` attribute is true for its parameters (see
  :mod:`algorithms.optim.estimators`: ``grpo`` with the group or no scale, ``dr_grpo``,
  ``rloo``) is called once over all batches, any other (the REINFORCE++ pair, ``grpo`` with
  ``scale="batch"``, a registered one) once per batch, as the trainer would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents import TabularSoftmaxPolicy
from thinksolve_env import SOLVER, THINKER, MathVerifier, TabularGame, ThinkSolveEnv, exact_values
from thinksolve_env.games import GameBatch, sample, sample_ratings

from .. import credit
from ..evaluation import correlation
from ..optim import estimators as estimator_registry
from ..rollout import RATINGS, SOLO, Collected, collect_groups

__all__ = [
    "Collection",
    "FLAT",
    "TREE",
    "MethodSpec",
    "game_outcomes",
    "build_groups",
    "apply_method",
    "role_advantages",
    "pairwise_sign_accuracy",
    "spearman_rows",
    "sign_agreement",
    "cosine",
    "mean_ci",
    "wilson_ci",
    "fidelity_scores",
    "learning_runs",
    "rating_fidelity",
    "real_text_fidelity",
]


@dataclass(frozen=True)
class Collection:
    """How a problem's Solver answers are spent: ``thoughts`` n × ``answers_per_thought`` K joint
    answers, plus ``solo_samples`` m Thinker-removed ones when the method needs them."""

    name: str
    thoughts: int
    answers_per_thought: int
    solo_samples: int = 4

    @property
    def label(self) -> str:
        return f"{self.name} {self.thoughts}x{self.answers_per_thought}"

    def solver_generations(self, method_requires: Iterable[str]) -> int:
        """Solver generations per problem: n·K joint answers, m solo answers when ``solo`` is
        needed, and the n·K·2 SEPO ratings (both raters) when ``ratings`` is (as the credit
        comparison counts them)."""
        req = set(method_requires)
        nk = self.thoughts * self.answers_per_thought
        return nk + (self.solo_samples if SOLO in req else 0) + (2 * nk if RATINGS in req else 0)


FLAT = Collection("flat", 8, 1)
TREE = Collection("tree", 4, 2)


@dataclass
class MethodSpec:
    """A benchmark method: its label, the registered credit name and parameters."""

    label: str
    name: str
    params: dict = field(default_factory=dict)

    def make(self) -> credit.CreditMethod:
        return credit.get(self.name, **self.params)


# --------------------------------------------------------------------------- groups from a game


def _rating_maps(ratings: np.ndarray) -> list[list[dict]]:
    """SEPO ratings (G, n, K, 2 raters, 2 shares) as one ``{rater: pair}`` per episode, per group."""
    G, n, K = ratings.shape[:3]
    E = n * K
    pairs = [{THINKER: (t0, t1), SOLVER: (s0, s1)} for t0, t1, s0, s1 in ratings.reshape(-1, 4).tolist()]
    return [pairs[g * E:(g + 1) * E] for g in range(G)]


def game_outcomes(batch: GameBatch, *, ratings: np.ndarray | None = None) -> credit.Outcomes:
    """``batch`` (a :class:`~thinksolve_env.games.GameBatch`) as one credit batch,
    :meth:`algorithms.credit.Outcomes.from_rewards`: G groups of n thoughts × K answers,
    thought-major (``thought_index`` j for thought j's K answers), the solo rewards (when
    sampled), R_¬S per episode (its thought's) and, with ``ratings`` (G, n, K, 2, 2), the SEPO
    pairs ``{thinker_0: pair, solver_0: pair}``. Every credit method takes it; its
    :class:`~algorithms.rollout.EpisodeGroup` objects are built only if a method iterates it."""
    G, n, K = batch.shape
    has_solo = batch.solo_reward.shape[1] > 0
    return credit.Outcomes.from_rewards(batch.reward.reshape(G, n * K), solo=batch.solo_reward if has_solo else None,
                                        no_solver=np.repeat(batch.no_solver_reward, K, axis=1),
                                        ratings=None if ratings is None else _rating_maps(ratings), answers_per_thought=K)


def build_groups(batch: GameBatch, *, ratings: np.ndarray | None = None, problems: Sequence[Any] | None = None) -> Collected:
    """One :class:`EpisodeGroup` per sampled group of ``batch`` (a :class:`~thinksolve_env.games.GameBatch`):
    episodes thought-major (``thought_index`` j for thought j's K answers), ``solo_rewards`` (when
    sampled), ``no_solver_reward`` per episode (its thought's R_¬S) and, with ``ratings``
    (G, n, K, 2, 2), ``Episode.ratings = {thinker_0: pair, solver_0: pair}``."""
    out = Collected(game_outcomes(batch, ratings=ratings))
    if problems is not None:
        for g, problem in zip(out, problems):
            g.problem = problem
    out.budget = {}
    return out


def apply_method(spec: MethodSpec, groups: Sequence[Any], per_batch: int, *, method: credit.CreditMethod | None = None,
                 methods: Sequence[credit.CreditMethod] | None = None) -> dict[str, np.ndarray]:
    """Credit rewards over ``groups`` (consecutive runs of ``per_batch`` groups form one batch):
    one call over all groups for a method that is
    :attr:`~algorithms.credit.CreditMethod.per_group`, else one call per batch (``methods`` may
    hold one instance per batch, e.g. one per seed; otherwise ``method`` is reused in order)."""
    if not methods:
        method = method or spec.make()
        if getattr(method, "per_group", False):
            return method(groups)
    outs = {THINKER: [], SOLVER: []}
    nb = len(groups) // per_batch
    for b in range(nb):
        inst = methods[b] if methods else method
        r = inst(groups[b * per_batch:(b + 1) * per_batch])
        for role in outs:
            outs[role].append(r[role])
    return {role: np.concatenate(v) for role, v in outs.items()}


def _group_local(fn: Any, params: dict) -> bool:
    """The estimator's ``group_local`` attribute for these parameters (absent: False)."""
    flag = getattr(fn, "group_local", False)
    return bool(flag(**params)) if callable(flag) else bool(flag)


def _advantages(fn: Any, params: dict, rewards: np.ndarray, index: np.ndarray, n_batches: int) -> np.ndarray:
    """The estimator over ``n_batches`` consecutive batches of equal size: one call when it is
    group-local, else one call per batch."""
    with torch.inference_mode():
        if _group_local(fn, params):
            return fn(rewards, index, **params).double().numpy()
        size = rewards.size // n_batches
        return np.concatenate([fn(rewards[b * size:(b + 1) * size], index[b * size:(b + 1) * size], **params).numpy()
                               for b in range(n_batches)]).astype(np.float64)


def role_advantages(method: credit.CreditMethod, groups: Sequence[Any], rewards: dict, estimator: str, estimator_params: dict,
                    n_batches: int) -> dict:
    """Per role: ``(advantages, units)`` as the trainer computes them (role_units with the
    method's grouping, then the estimator), ``groups`` being ``n_batches`` batches of equal size:
    one estimator call for all of them when it is group-local, else one per batch."""
    fn = estimator_registry.get(estimator)
    out = {}
    for role in (THINKER, SOLVER):
        units = credit.role_units(groups, rewards[role], role, credit.resolve_grouping(method, role))
        adv = _advantages(fn, estimator_params, np.asarray(units.rewards), np.asarray(units.index), n_batches)
        out[role] = (adv, units)
    return out


# --------------------------------------------------------------------------- scores


def pairwise_sign_accuracy(est: np.ndarray, exact: np.ndarray, atol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per row (group): (correct pairs, scored pairs) over pairs u < v with A_u ≠ A_v; a tie in
    the estimate counts one half. ``est``, ``exact``: (G, U)."""
    de = est[:, :, None] - est[:, None, :]
    dx = exact[:, :, None] - exact[:, None, :]
    U = est.shape[1]
    upper = np.triu(np.ones((U, U), bool), 1)
    scored = (np.abs(dx) > 1e-12) & upper
    tie = np.abs(de) <= atol
    right = np.where(tie, 0.5, (np.sign(de) == np.sign(dx)).astype(np.float64))
    return (right * scored).sum(axis=(1, 2)), scored.sum(axis=(1, 2)).astype(np.float64)


def _ranks(v: np.ndarray, atol: float) -> np.ndarray:
    less = (v[:, None, :] < v[:, :, None] - atol).sum(axis=2)
    equal = (np.abs(v[:, None, :] - v[:, :, None]) <= atol).sum(axis=2)
    return less + (equal + 1) / 2.0


def spearman_rows(est: np.ndarray, exact: np.ndarray, atol: float = 1e-6) -> np.ndarray:
    """Spearman's ρ per row (average ranks for ties); NaN where ``exact`` is constant, 0 where
    ``est`` is."""
    re, rx = _ranks(est, atol), _ranks(exact, 1e-12)
    re = re - re.mean(axis=1, keepdims=True)
    rx = rx - rx.mean(axis=1, keepdims=True)
    num = (re * rx).sum(axis=1)
    den = np.sqrt((re**2).sum(axis=1) * (rx**2).sum(axis=1))
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.where((rx**2).sum(axis=1) > 0, out, np.nan)


def sign_agreement(est: np.ndarray, exact: np.ndarray, atol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (agreeing units, scored units): sign(â) = sign(A) over units with A ≠ 0; â = 0 counts one half."""
    scored = np.abs(exact) > 1e-12
    right = np.where(np.abs(est) <= atol, 0.5, (np.sign(est) == np.sign(exact)).astype(np.float64))
    return (right * scored).sum(axis=-1), scored.sum(axis=-1).astype(np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine over the last two axes (0 where either side is zero)."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def mean_ci(values: np.ndarray) -> tuple[float, list[float]]:
    """Mean and the normal 95% interval mean ± 1.96·sd/√n over the finite values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, [math.nan, math.nan]
    m = float(v.mean())
    h = 1.96 * float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else 0.0
    return m, [m - h, m + h]


def wilson_ci(k: float, n: int) -> list[float]:
    """Wilson's 95% interval for a proportion k/n."""
    if n == 0:
        return [math.nan, math.nan]
    z, p = 1.96, k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [c - h, c + h]


def _per_batch(num: np.ndarray, den: np.ndarray, nb: int) -> np.ndarray:
    num, den = num.reshape(nb, -1).sum(axis=1), den.reshape(nb, -1).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _scores(prefix: str, adv: np.ndarray, exact: np.ndarray, nb: int, grad_sampled: np.ndarray, grad_exact: np.ndarray) -> dict:
    """Scores of one role: ``adv``/``exact`` (G, U) with G = nb·groups per batch."""
    c, s = pairwise_sign_accuracy(adv, exact)
    acc = _per_batch(c, s, nb)
    rho = spearman_rows(adv, exact).reshape(nb, -1)
    valid = np.isfinite(rho)
    count = valid.sum(axis=1)
    rho_b = np.where(count > 0, np.where(valid, rho, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    ac, an = sign_agreement(adv, exact)
    agree = _per_batch(ac, an, nb)
    cos = cosine(grad_sampled, grad_exact)
    out = {}
    for key, vals in (("sign_accuracy", acc), ("spearman", rho_b), ("sign_agreement", agree), ("grad_cosine", cos)):
        m, ci = mean_ci(vals)
        out[f"{prefix}_{key}"] = m
        out[f"{prefix}_{key}_ci95"] = ci
    return out


# --------------------------------------------------------------------------- fidelity grid


def _draw(game: TabularGame, collection: Collection, batches: int, problems_per_batch: int, rng: np.random.Generator,
          policy_scale: float, rater_accuracy: float, need_ratings: bool):
    """Policies (one per batch), sampled episodes, exact values and ratings for one collection."""
    B, P = batches, problems_per_batch
    thinker = TabularSoftmaxPolicy(game.n_thinker_obs, game.n_thoughts, batch=(B,),
                                   logits=rng.normal(0.0, policy_scale, (B, game.n_thinker_obs, game.n_thoughts)))
    solver = TabularSoftmaxPolicy(game.n_solver_obs, game.n_answers, batch=(B,),
                                  logits=rng.normal(0.0, policy_scale, (B, game.n_solver_obs, game.n_answers)))
    piT, piS = thinker.probs, solver.probs
    ex = exact_values(game, piT, piS)
    batch = sample(game, np.repeat(piT, P, axis=0), np.repeat(piS, P, axis=0), rng, groups=B * P,
                   thoughts=collection.thoughts, answers_per_thought=collection.answers_per_thought,
                   solo_samples=collection.solo_samples)
    bi = np.repeat(np.arange(B), P)
    A_T = ex.A_T[bi[:, None], batch.x[:, None], batch.t]  # (G, n)
    A_S = ex.A_S[bi[:, None, None], batch.x[:, None, None], batch.t[:, :, None], batch.a]  # (G, n, K)
    ratings = None
    if need_ratings:
        ratings = sample_ratings(np.broadcast_to(A_T[:, :, None], A_S.shape), A_S, batch.reward, rater_accuracy, rng)
    return thinker, solver, ex, batch, A_T, A_S, ratings


def _grads(game, thinker, solver, batch, adv_T, adv_S, B, P):
    G, n, K = batch.shape
    oT = game.thinker_obs[batch.x][:, None].repeat(n, axis=1).reshape(B, P * n)
    gT = thinker.score_gradient(oT, batch.t.reshape(B, P * n), adv_T.reshape(B, P * n))
    oS = game.solver_obs[batch.x[:, None], batch.t][:, :, None].repeat(K, axis=2).reshape(B, P * n * K)
    gS = solver.score_gradient(oS, batch.a.reshape(B, P * n * K), adv_S.reshape(B, P * n * K))
    return gT, gS


def fidelity_scores(game: TabularGame, specs: Sequence[MethodSpec], estimators: Sequence[tuple[str, dict]],
                    collections: Sequence[Collection] = (FLAT, TREE), *, batches: int = 1000, problems_per_batch: int = 4,
                    seed: int = 0, policy_scale: float = 1.0, rater_accuracy: float = 0.8) -> list[dict]:
    """Fidelity rows (one per collection × method × estimator) for ``game``: every method and
    estimator sees the same sampled batches of a collection (paired comparison)."""
    rows = []
    need_ratings = any(RATINGS in spec.make().requires for spec in specs)
    for ci, collection in enumerate(collections):
        rng = np.random.default_rng([seed, ci])
        thinker, solver, ex, batch, A_T, A_S, ratings = _draw(game, collection, batches, problems_per_batch, rng,
                                                               policy_scale, rater_accuracy, need_ratings)
        groups = game_outcomes(batch, ratings=ratings)
        G, n, K = batch.shape
        for spec in specs:
            t0 = time.perf_counter()
            method = spec.make()
            rewards = apply_method(spec, groups, problems_per_batch, method=method)
            credit_s = time.perf_counter() - t0
            for est_name, est_params in estimators:
                t1 = time.perf_counter()
                adv = role_advantages(method, groups, rewards, est_name, est_params, batches)
                aT = adv[THINKER][0].reshape(G, n)
                aS = adv[SOLVER][0].reshape(G, n * K)
                gT, gS = _grads(game, thinker, solver, batch, aT, aS, batches, problems_per_batch)
                row = {"game": game.name, "collection": collection.label, "method": spec.label,
                       "estimator": _est_label(est_name, est_params),
                       "batches": batches, "problems_per_batch": problems_per_batch,
                       "solver_generations_per_problem": collection.solver_generations(method.requires)}
                row.update(_scores("thinker", aT, A_T, batches, gT, ex.grad_T))
                row.update(_scores("solver", aS, A_S.reshape(G, n * K), batches, gS, ex.grad_S))
                row["seconds"] = credit_s / len(estimators) + time.perf_counter() - t1
                rows.append(row)
    return rows


def _est_label(name: str, params: dict) -> str:
    return name if not params else name + "(" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"


# --------------------------------------------------------------------------- learning


def learning_runs(game: TabularGame, specs: Sequence[MethodSpec], estimators: Sequence[tuple[str, dict]],
                  collections: Sequence[Collection] = (FLAT, TREE), *, seeds: int = 200, updates: int = 40,
                  problems_per_batch: int = 2, lr: float = 3.0, seed: int = 0, rater_accuracy: float = 0.8,
                  optimum_tol: float = 0.05) -> list[dict]:
    """Learning rows (collection × method × estimator): ``seeds`` independent runs at once,
    uniform initial policies, ``updates`` steps of θ ← θ + lr·ĝ per role, ĝ = mean over the role's
    units of â·∇log π (the sampled policy gradient). Seeds share nothing; each cell starts from
    the same random streams (common random numbers across methods)."""
    rows = []
    S, P = seeds, problems_per_batch
    optimum = game.optimum()
    for ci, collection in enumerate(collections):
        for spec in specs:
            probe = spec.make()
            need_ratings = RATINGS in probe.requires
            per_group = getattr(probe, "per_group", False)
            for est_name, est_params in estimators:
                t0 = time.perf_counter()
                rng = np.random.default_rng([seed, ci, 7])
                thinker = TabularSoftmaxPolicy(game.n_thinker_obs, game.n_thoughts, batch=(S,))
                solver = TabularSoftmaxPolicy(game.n_solver_obs, game.n_answers, batch=(S,))
                methods = None if per_group else [spec.make() for _ in range(S)]
                method = probe if per_group else methods[0]
                for _ in range(updates):
                    piT, piS = thinker.probs, solver.probs
                    batch = sample(game, np.repeat(piT, P, axis=0), np.repeat(piS, P, axis=0), rng, groups=S * P,
                                   thoughts=collection.thoughts, answers_per_thought=collection.answers_per_thought,
                                   solo_samples=collection.solo_samples if SOLO in probe.requires else 0)
                    ratings = None
                    if need_ratings:
                        ex = exact_values(game, piT, piS)
                        si = np.repeat(np.arange(S), P)
                        A_T = ex.A_T[si[:, None], batch.x[:, None], batch.t]
                        A_S = ex.A_S[si[:, None, None], batch.x[:, None, None], batch.t[:, :, None], batch.a]
                        ratings = sample_ratings(np.broadcast_to(A_T[:, :, None], A_S.shape), A_S, batch.reward,
                                                 rater_accuracy, rng)
                    groups = game_outcomes(batch, ratings=ratings)
                    rewards = apply_method(spec, groups, P, method=probe if per_group else None, methods=methods)
                    adv = role_advantages(method, groups, rewards, est_name, est_params, S)
                    G, n, K = batch.shape
                    gT, gS = _grads(game, thinker, solver, batch, adv[THINKER][0], adv[SOLVER][0], S, P)
                    thinker.ascend(gT / (P * n), lr)
                    solver.ascend(gS / (P * n * K), lr)
                final = exact_values(game, thinker.probs, solver.probs).success  # (S,)
                m, ci95 = mean_ci(final)
                reached = int(np.sum(final >= optimum - optimum_tol))
                gens = collection.solver_generations(probe.requires) * P * updates
                rows.append({"game": game.name, "collection": collection.label, "method": spec.label,
                             "estimator": _est_label(est_name, est_params), "seeds": S, "updates": updates,
                             "success_after": m, "success_after_ci95": ci95, "optimum": optimum,
                             "reach_optimum": reached / S, "reach_optimum_ci95": wilson_ci(reached, S),
                             "solver_generations": gens, "learning_seconds": time.perf_counter() - t0})
    return rows


# --------------------------------------------------------------------------- real model text


def _text_scores(prefix: str, adv: np.ndarray, target: np.ndarray) -> dict:
    """Pairwise sign accuracy and Spearman per problem group, mean and 95% interval over groups."""
    c, s = pairwise_sign_accuracy(adv, target)
    out = {}
    for key, vals in (("sign_accuracy", np.where(s > 0, c / np.maximum(s, 1), np.nan)), ("spearman", spearman_rows(adv, target))):
        m, ci = mean_ci(vals)
        out[f"{prefix}_{key}"], out[f"{prefix}_{key}_ci95"] = m, ci
    out[f"{prefix}_scored_groups"] = int(np.sum(s > 0))
    return out


def rating_fidelity(groups: Sequence[Any], Q: np.ndarray, *, resamples: int = 2000, seed: int = 0) -> dict:
    """How the collected SEPO ratings relate to the thoughts' real contribution (empty without ratings).

    ``rating_valid_rate``: share of ratings (both raters) that parse to a valid pair agreeing with
    the verifier. ``rating_q_correlation``: Pearson correlation, over rated episodes, of the
    combined SEPO signal for the Thinker, (w_T − 0.5)·R (positive when the raters credit the
    Thinker for a success or blame the Solver for a failure; w_T from docs/method.md#sepo with η = 0.3),
    with the Monte Carlo value Q(x, t_j) of the episode's thought. A rater that judges the thought
    gives a positive correlation; the neutral pair gives none (``None`` when either is constant).
    ``*_ci95``: 95% percentile-bootstrap intervals over problems (``resamples`` draws of the
    groups with replacement; episodes of one problem are not independent), ``None`` where the
    statistic is undefined in more than 5% of the draws."""
    # (group, thought, episode) for every joint episode; Q[i, j] is thought j of group i
    eps = [(i, j, e) for i, g in enumerate(groups) for j, siblings in enumerate(g.thought_episodes) for e in siblings]
    if not eps or any(e.ratings is None for _, _, e in eps):
        return {}
    valid, signal, value, group = [], [], [], []
    reasons: dict[str, int] = {}
    for i, j, e in eps:
        correct = e.reward > 0
        rt, rs = credit.parse_rating(e.ratings.get(THINKER), correct), credit.parse_rating(e.ratings.get(SOLVER), correct)
        valid.append((rt.valid + rs.valid) / 2)
        for r in (rt, rs):
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        s_t = 0.3 * rt.pair[0] + 0.7 * rs.pair[0]
        s_s = 0.3 * rs.pair[1] + 0.7 * rt.pair[1]
        w_t = s_t / (s_t + s_s)
        signal.append((w_t - 0.5) * (1.0 if correct else -1.0))
        value.append(float(Q[i, j]))
        group.append(i)
    valid_a, signal_a, value_a, group_a = map(np.asarray, (valid, signal, value, group))
    members = [np.flatnonzero(group_a == i) for i in range(len(groups))]
    rng = np.random.default_rng(seed)
    rates, corrs = [], []
    for _ in range(resamples):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(groups), len(groups))])
        rates.append(float(valid_a[idx].mean()))
        corrs.append(correlation(signal_a[idx], value_a[idx]))
    defined = [c for c in corrs if c is not None]

    def ci(xs: list[float]) -> list[float]:
        return [float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5))]

    return {"rating_valid_rate": float(valid_a.mean()), "rating_valid_rate_ci95": ci(rates),
            "rating_q_correlation": correlation(signal, value),
            "rating_q_correlation_ci95": ci(defined) if len(defined) >= 0.95 * resamples else None,
            "rated_episodes": len(eps), "rated_problems": len(groups), "rating_reasons": dict(sorted(reasons.items())),
            # the first ratings as written (model text, stored as data, never evaluated), for a reader to see
            "rating_examples": [str(e.ratings.get(r))[:300] for _, _, e in eps[:3] for r in (THINKER, SOLVER)]}


def real_text_fidelity(policies: Mapping[str, Any], problems: Iterable[Any], specs: Sequence[MethodSpec],
                       estimators: Sequence[tuple[str, dict]], collections: Sequence[Collection] = (FLAT, TREE), *,
                       mc_answers: int = 32, verifier: Any = None, env_options: dict | None = None, seed: int = 0,
                       raters: Mapping[str, Any] | None = None, rater_prompts: Any = None,
                       **sampling: Any) -> tuple[list[dict], dict]:
    """The lab on model text (docs/method.md#credit-against-ground-truth, last point).

    Per collection: :func:`~algorithms.rollout.collect_groups` plays n thoughts × K answers per
    problem with ``policies``; the ground truth Q(x, t_j) is the mean reward of ``mc_answers``
    (M ≥ 32) *fresh* Solver answers to thought j's joint prompt (one extra ``generate`` call with
    its own seed; never the answers the method saw), each verified through the env. Every method's
    Thinker advantage is scored against Q(x, t_j) − mean_j Q(x, t_j), its Solver advantage against
    R_jk − Q(x, t_j) (the verifier is deterministic given the answer), within each problem group;
    intervals are over problems. ``raters`` / ``rater_prompts``: who writes the SEPO ratings and
    from which templates (default: the team's own policies and the env's prompts; a judge model
    sees the same transcripts). Ratings stop where the methods that read them say their parse is
    final (their shared ``rating_stop``). ``sampling``: collect_groups' sampling keywords."""
    if isinstance(mc_answers, bool) or not isinstance(mc_answers, int) or mc_answers < 32:
        raise ValueError("real_text_fidelity: mc_answers must be an integer >= 32 "
                         f"(docs/method.md#credit-against-ground-truth), got {mc_answers!r}")
    problems = list(problems)
    need, stops = set(), set()
    for spec in specs:
        method = spec.make()
        need |= set(method.requires)
        if RATINGS in method.requires:
            stops.add(getattr(method, "rating_stop", None))
    rating_stop = stops.pop() if len(stops) == 1 else None  # only a stop rule every rating reader shares
    own = verifier is None
    verifier = MathVerifier() if own else verifier
    env = ThinkSolveEnv(problems, verifier=verifier, **dict(env_options or {}))
    solver = policies[SOLVER]
    rows, info = [], {"problems": len(problems), "mc_answers": mc_answers, "collections": {}}
    try:
        for ci, coll in enumerate(collections):
            n, K = coll.thoughts, coll.answers_per_thought
            groups = collect_groups(problems, policies, group_size=n, answers_per_thought=K, needs=need, verifier=verifier,
                                    solo_samples=coll.solo_samples, env_options=env_options, rating_stop=rating_stop,
                                    raters=raters, rater_prompts=rater_prompts,
                                    seed=None if seed is None else seed + 10 * ci, **sampling)
            firsts = [(i, g.episodes[j * K]) for i, g in enumerate(groups) for j in range(n)]
            prompts = [e.prompts[SOLVER] for _, e in firsts for _ in range(mc_answers)]
            answers = solver.generate(prompts, max_new_tokens=sampling.get("solver_max_new_tokens", 6144),
                                      temperature=sampling.get("temperature", 1.0), top_p=sampling.get("top_p", 1.0),
                                      seed=None if seed is None else seed + 10 * ci + 5)
            rewards = np.zeros(len(prompts))
            for k, ((i, e), a) in enumerate(zip([f for f in firsts for _ in range(mc_answers)], answers)):
                env.reset(options={"problem": i})
                env.step(e.completions[THINKER].text)
                env.step(a.text)
                rewards[k] = float(env.rewards[SOLVER])
            G = len(groups)
            Q = rewards.reshape(G, n, mc_answers).mean(axis=2)
            target_T = Q - Q.mean(axis=1, keepdims=True)
            R = np.array([[e.reward for e in g.episodes] for g in groups])
            target_S = R - np.repeat(Q, K, axis=1)
            info["collections"][coll.label] = {"ground_truth_generations": len(prompts), "budget": groups.budget,
                                               "mean_Q": float(Q.mean()), "joint_accuracy": float(np.mean(R > 0)),
                                               **rating_fidelity(groups, Q)}
            for spec in specs:
                method = spec.make()
                rw = method(groups)
                for est_name, est_params in estimators:
                    adv = role_advantages(method, groups, rw, est_name, est_params, 1)
                    row = {"game": "real", "collection": coll.label, "method": spec.label,
                           "estimator": _est_label(est_name, est_params), "problems": G, "mc_answers": mc_answers,
                           "solver_generations": coll.solver_generations(method.requires) * G}
                    row.update(_text_scores("thinker", adv[THINKER][0].reshape(G, n), target_T))
                    row.update(_text_scores("solver", adv[SOLVER][0].reshape(G, n * K), target_S))
                    rows.append(row)
    finally:
        env.close()
        if own:
            verifier.close()
    return rows, info
