"""Tabular Think–Solve games with exact values (docs/method.md#credit-against-ground-truth).

The Think–Solve game of :mod:`thinksolve_env.env` with small finite action sets, so that every
quantity a credit method estimates has an exact value. A problem x ~ p(x); the Thinker, seeing
its observation o_T(x), picks a thought t ~ π_T(·|o_T(x)); the Solver, seeing o_S(x, t), picks an
answer a ~ π_S(·|o_S(x, t)); the team is right (R = +1) with probability p(x, t, a), else R = −1.

Removal modes (as in the env, docs/method.md#counterfactual-removal):

* Thinker removed: the Solver answers from the problem alone, o_S(x, ∅) — the thought index
  ``n_thoughts`` stands for ∅ in ``success`` and ``solver_obs`` — so R_¬T ~ p(x, ∅, a);
* Solver removed: the thought is verified on its own; R_¬S = +1 with probability
  ``states[x, t]`` (the chance that the thought states a right answer; default
  ``state_rate`` · mean_a p(x, t, a), since thoughts are told not to answer);
* both removed: R_∅ = −1.

Exact values for policy tables ``pi_T`` (…, O_T, T) and ``pi_S`` (…, O_S, A) (any leading
batch dimensions, e.g. one table per seed), with r(x, t, a) = E[R | x, t, a] = 2p − 1:

    Q_T(x, t)   = Σ_a π_S(a | o_S(x, t)) r(x, t, a)           b(x) = Σ_a π_S(a | o_S(x, ∅)) r(x, ∅, a)
    V(x)        = Σ_t π_T(t | o_T(x)) Q_T(x, t)              J = Σ_x p(x) V(x),  success = (1 + J)/2
    A_T(x, t)   = Q_T(x, t) − V(x)                           A_S(x, t, a) = r(x, t, a) − Q_T(x, t)
    ∂J/∂θ_T[o, t] = Σ_{x: o_T(x) = o} p(x) π_T(t|o) A_T(x, t)
    ∂J/∂θ_S[o, a] = Σ_{x, t: o_S(x, t) = o} p(x) π_T(t|o_T(x)) π_S(a|o) A_S(x, t, a)

(the gradients are those of softmax tables, π(·|o) = softmax(θ[o]); the Thinker-removed rows do
not enter J). :func:`sample` draws batches of tree-structured episodes as numpy arrays, vectorised
over groups (and over per-group policy tables). :func:`sample_ratings` is a SEPO rater with a
settable accuracy.

Games (:func:`make_game`, :data:`GAMES`), each with ``noise`` (outcome noise: every success
probability is mixed with a fair coin, p ← (1 − noise)·p + noise/2) and ``state_rate``:

``helpful-harmful``  problems with base rates p0; thoughts helpful / neutral / harmful
                     (P(correct) = p0 + δ, p0, p0 − δ) when the Solver *uses* the thought, p0 when
                     it *ignores* it; the Thinker-removed Solver solves at p0.
``lazy-thinker``     the Solver's own approach decides (right 0.85, wrong 0.15 of the time); the
                     thoughts barely matter (+δ_small for one): a lazy Thinker learns nothing from
                     shared reward, which is mostly the Solver's noise.
``climbing``         the sequential climbing game, payoff [[11, −30, 0], [−30, 7, 6], [0, 0, 5]]
                     (row = thought, column = answer) scaled to success probabilities
                     (payoff + 30)/41: the safe row 2 wins under a uniform Solver, the optimum
                     (11) needs coordination. Thinker removed: the column means.
``two-step``         QMIX's two-step game made sequential: the thought picks the state (A or B)
                     and the Thinker's move; in A every answer pays 7, in B [[0, 1], [1, 8]];
                     payoffs /8 as success probabilities. A wins locally, B·(1, 1) is optimal.
``signalling``       the Thinker sees a hidden state x (uniform over k), the Solver only the
                     message t; right when a = x (0.9, else 0.1). Thinker removed: the Solver sees
                     nothing.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "TabularGame",
    "ExactValues",
    "GameBatch",
    "GAMES",
    "make_game",
    "available_games",
    "exact_values",
    "sample",
    "sample_ratings",
    "categorical",
    "ChainGame",
    "ChainValues",
    "ChainBatch",
    "CHAIN_GAMES",
    "make_chain",
    "available_chains",
    "chain_values",
    "chain_from_game",
    "sample_chain",
    "coalition_generations",
    "shapley_weights",
    "relay_chain",
    "free_rider",
    "complements",
    "substitutes",
]


@dataclass(frozen=True)
class TabularGame:
    """A finite Think–Solve game (see the module docstring).

    ``problem_probs`` (X,) p(x); ``success`` (X, T+1, A) p(x, t, a), row T = Thinker removed;
    ``thinker_obs`` (X,) o_T(x); ``solver_obs`` (X, T+1) o_S(x, t); ``states`` (X, T) P(R_¬S = +1)."""

    name: str
    problem_probs: np.ndarray
    success: np.ndarray
    thinker_obs: np.ndarray
    solver_obs: np.ndarray
    states: np.ndarray
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p, s = np.asarray(self.problem_probs, float), np.asarray(self.success, float)
        if p.ndim != 1 or p.size == 0 or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
            raise ValueError(f"game {self.name!r}: problem_probs must be a probability vector, got {p}")
        if s.ndim != 3 or s.shape[0] != p.size or s.shape[1] < 2 or s.shape[2] < 1:
            raise ValueError(
                f"game {self.name!r}: success must have shape (problems, thoughts + 1, answers), got {s.shape}"
            )
        if np.any(s < 0) or np.any(s > 1):
            raise ValueError(f"game {self.name!r}: success probabilities must lie in [0, 1]")
        X, T1, _ = s.shape
        to, so, st = np.asarray(self.thinker_obs), np.asarray(self.solver_obs), np.asarray(self.states, float)
        if to.shape != (X,) or so.shape != (X, T1) or st.shape != (X, T1 - 1):
            raise ValueError(f"game {self.name!r}: thinker_obs {to.shape}, solver_obs {so.shape}, states {st.shape} "
                             f"must be ({X},), ({X}, {T1}), ({X}, {T1 - 1})")
        if np.any(st < 0) or np.any(st > 1):
            raise ValueError(f"game {self.name!r}: states must be probabilities")
        for arr, nm in ((to, "thinker_obs"), (so, "solver_obs")):
            if arr.dtype.kind not in "iu" or arr.min() < 0 or set(np.unique(arr)) != set(range(int(arr.max()) + 1)):
                raise ValueError(f"game {self.name!r}: {nm} must number the observations 0..O-1")
        checked = (("problem_probs", p), ("success", s), ("thinker_obs", to), ("solver_obs", so), ("states", st))
        for name, arr in checked:
            arr = np.array(arr)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def n_problems(self) -> int:
        return self.success.shape[0]

    @property
    def n_thoughts(self) -> int:
        return self.success.shape[1] - 1

    @property
    def n_answers(self) -> int:
        return self.success.shape[2]

    @property
    def n_thinker_obs(self) -> int:
        return int(self.thinker_obs.max()) + 1

    @property
    def n_solver_obs(self) -> int:
        return int(self.solver_obs.max()) + 1

    @property
    def expected_reward(self) -> np.ndarray:
        """r(x, t, a) = E[R | x, t, a] = 2·p(x, t, a) − 1, shape (X, T+1, A)."""
        return 2.0 * self.success - 1.0

    def optimum(self) -> float:
        """The best team success probability over deterministic joint policies (the Thinker's
        policies enumerated, the Solver's best response per observation)."""
        X, T, A = self.n_problems, self.n_thoughts, self.n_answers
        r = self.expected_reward[:, :T, :]
        best = -np.inf
        for choice in itertools.product(range(T), repeat=self.n_thinker_obs):
            t = np.asarray(choice)[self.thinker_obs]  # the thought of each problem
            obs = self.solver_obs[np.arange(X), t]
            value = np.zeros((self.n_solver_obs, A))
            np.add.at(value, obs, self.problem_probs[:, None] * r[np.arange(X), t])
            best = max(best, float(value.max(axis=1).sum()))
        return (1.0 + best) / 2.0


@dataclass
class ExactValues:
    """Exact quantities of a game under policy tables (module docstring), leading dims kept."""

    q_sa: np.ndarray  # (…, X, T, A) r(x, t, a) for the joint thoughts
    Q_T: np.ndarray  # (…, X, T)
    V: np.ndarray  # (…, X)
    b: np.ndarray  # (…, X) Thinker-removed value
    A_T: np.ndarray  # (…, X, T)
    A_S: np.ndarray  # (…, X, T, A)
    J: np.ndarray  # (…,) E[R]
    success: np.ndarray  # (…,) (1 + J)/2
    grad_T: np.ndarray  # (…, O_T, T) ∂J/∂θ_T
    grad_S: np.ndarray  # (…, O_S, A) ∂J/∂θ_S


def _check_tables(game: TabularGame, pi_T: ArrayLike, pi_S: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pi_T, pi_S = np.asarray(pi_T, np.float64), np.asarray(pi_S, np.float64)
    if pi_T.shape[-2:] != (game.n_thinker_obs, game.n_thoughts):
        raise ValueError(f"game {game.name!r}: the Thinker table must end in "
                         f"({game.n_thinker_obs}, {game.n_thoughts}), got {pi_T.shape}")
    if pi_S.shape[-2:] != (game.n_solver_obs, game.n_answers):
        raise ValueError(f"game {game.name!r}: the Solver table must end in "
                         f"({game.n_solver_obs}, {game.n_answers}), got {pi_S.shape}")
    return pi_T, pi_S


def exact_values(game: TabularGame, pi_T: ArrayLike, pi_S: ArrayLike) -> ExactValues:
    """Every exact value of the module docstring for policy tables ``pi_T``, ``pi_S``
    (rows of probabilities; matching leading batch dimensions, or none)."""
    pi_T, pi_S = _check_tables(game, pi_T, pi_S)
    T = game.n_thoughts
    r = game.expected_reward  # (X, T+1, A)
    pT = pi_T[..., game.thinker_obs, :]  # (…, X, T)
    pS = pi_S[..., game.solver_obs, :]  # (…, X, T+1, A)
    Q_all = np.sum(pS * r, axis=-1)  # (…, X, T+1)
    Q_T, b = Q_all[..., :T], Q_all[..., T]
    V = np.sum(pT * Q_T, axis=-1)
    A_T = Q_T - V[..., None]
    q_sa = np.broadcast_to(r[:, :T, :], pS[..., :T, :].shape)
    A_S = q_sa - Q_T[..., None]
    px = game.problem_probs
    J = np.sum(px * V, axis=-1)
    MT = np.eye(game.n_thinker_obs)[game.thinker_obs]  # (X, O_T)
    MS = np.eye(game.n_solver_obs)[game.solver_obs[:, :T]]  # (X, T, O_S)
    grad_T = np.einsum("xo,...xt->...ot", MT, px[:, None] * pT * A_T)
    w = (px[:, None] * pT)[..., None] * pS[..., :T, :] * A_S  # (…, X, T, A)
    grad_S = np.einsum("xto,...xta->...oa", MS, w)
    return ExactValues(q_sa=np.array(q_sa), Q_T=Q_T, V=V, b=b, A_T=A_T, A_S=A_S, J=J, success=(1 + J) / 2,
                       grad_T=grad_T, grad_S=grad_S)


# --------------------------------------------------------------------------- sampling


def categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs`` (…, k) by inverse CDF; returns int64 (…)."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((u >= cdf).sum(axis=-1), probs.shape[-1] - 1).astype(np.int64)


@dataclass
class GameBatch:
    """Sampled tree-structured episodes of G groups (one problem each), as arrays.

    ``x`` (G,) problems; ``t`` (G, n) thoughts; ``a`` (G, n, K) answers; ``reward`` (G, n, K) R_joint;
    ``solo_a``, ``solo_reward`` (G, m) Thinker-removed answers and R_¬T; ``no_solver_reward`` (G, n)
    R_¬S of each thought (the thought verified alone: the same for its K episodes)."""

    x: np.ndarray
    t: np.ndarray
    a: np.ndarray
    reward: np.ndarray
    solo_a: np.ndarray
    solo_reward: np.ndarray
    no_solver_reward: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(G, n, K)."""
        return self.a.shape


def _per_group(table: np.ndarray, G: int, name: str) -> np.ndarray:
    if table.ndim == 2:
        return table[None]
    if table.ndim == 3 and table.shape[0] == G:
        return table
    raise ValueError(f"{name} must be one table (O, k) or one per group ({G}, O, k), got {table.shape}")


def sample(game: TabularGame, pi_T: ArrayLike, pi_S: ArrayLike, rng: np.random.Generator, *, groups: int, thoughts: int,
           answers_per_thought: int = 1, solo_samples: int = 0, problems: np.ndarray | None = None) -> GameBatch:
    """Sample ``groups`` groups of ``thoughts`` × ``answers_per_thought`` joint episodes (one
    Thinker call per thought, K Solver answers each) plus ``solo_samples`` Thinker-removed answers
    per group. ``pi_T``/``pi_S`` are one table or one per group; ``problems`` fixes x per group
    (default: drawn from p(x))."""
    for nm, v, lo in (("groups", groups, 1), ("thoughts", thoughts, 1), ("answers_per_thought", answers_per_thought, 1),
                      ("solo_samples", solo_samples, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"sample: {nm} must be an integer >= {lo}, got {v!r}")
    pi_T, pi_S = _check_tables(game, pi_T, pi_S)
    G, n, K, m = int(groups), int(thoughts), int(answers_per_thought), int(solo_samples)
    pT, pS = _per_group(pi_T, G, "pi_T"), _per_group(pi_S, G, "pi_S")
    gi = np.arange(G) if pT.shape[0] == G else np.zeros(G, np.int64)
    gs = np.arange(G) if pS.shape[0] == G else np.zeros(G, np.int64)
    if problems is None:
        x = categorical(np.broadcast_to(game.problem_probs, (G, game.n_problems)), rng)
    else:
        x = np.asarray(problems, np.int64).reshape(G)
    t = categorical(pT[gi, game.thinker_obs[x]][:, None, :].repeat(n, axis=1), rng)  # (G, n)
    o = game.solver_obs[x[:, None], t]  # (G, n)
    a = categorical(pS[gs[:, None], o][:, :, None, :].repeat(K, axis=2), rng)  # (G, n, K)
    p = game.success[x[:, None, None], t[:, :, None], a]
    reward = np.where(rng.random(p.shape) < p, 1.0, -1.0)
    T = game.n_thoughts
    if m:
        o0 = game.solver_obs[x, T]
        solo_a = categorical(pS[gs, o0][:, None, :].repeat(m, axis=1), rng)
        solo_reward = np.where(rng.random((G, m)) < game.success[x[:, None], T, solo_a], 1.0, -1.0)
    else:
        solo_a, solo_reward = np.zeros((G, 0), np.int64), np.zeros((G, 0))
    no_solver = np.where(rng.random((G, n)) < game.states[x[:, None], t], 1.0, -1.0)
    return GameBatch(x=x, t=t, a=a, reward=reward, solo_a=solo_a, solo_reward=solo_reward, no_solver_reward=no_solver)


#: SEPO's fixed rating pairs (Thinker share, Solver share), docs/method.md#sepo.
RATING_PAIRS = tuple((round(0.9 - 0.1 * i, 1), round(0.1 + 0.1 * i, 1)) for i in range(9))


def sample_ratings(adv_T: np.ndarray, adv_S: np.ndarray, reward: np.ndarray, accuracy: float,
                   rng: np.random.Generator, *, scale: float = 0.5) -> np.ndarray:
    """A SEPO rater with accuracy ``accuracy``: pairs (…, 2 raters, 2 shares).

    The informed pair gives the Thinker the share 0.5 + 0.4·tanh(d/scale) rounded to the set,
    d = sign(R)·(A_T − A_S): credit to the role with the larger exact advantage when the team is
    right, blame to the role with the smaller one when it is wrong. Each rater (self and peer,
    independently) gives the informed pair with probability ``accuracy`` and a uniformly random
    pair of the set otherwise."""
    if not 0 <= accuracy <= 1:
        raise ValueError(f"rater accuracy must be in [0, 1], got {accuracy!r}")
    d = np.sign(reward) * (np.asarray(adv_T) - np.asarray(adv_S))
    share = np.clip(np.round(5 + 4 * np.tanh(d / scale)), 1, 9)  # tenths of the Thinker's share
    shape = reward.shape + (2,)
    informed = rng.random(shape) < accuracy
    random_share = rng.integers(1, 10, size=shape)
    tenths = np.where(informed, share[..., None], random_share)
    return np.stack([tenths / 10.0, 1.0 - tenths / 10.0], axis=-1).round(1)


# --------------------------------------------------------------------------- the games


def _noisy(p: np.ndarray, noise: float) -> np.ndarray:
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be in [0, 1], got {noise!r}")
    return (1 - noise) * np.asarray(p, float) + noise / 2


def _finish(name, px, success, *, noise, state_rate, description, params, thinker_obs=None, solver_obs=None):
    success = np.clip(_noisy(success, noise), 0.0, 1.0)
    if not 0 <= state_rate <= 1:
        raise ValueError(f"state_rate must be in [0, 1], got {state_rate!r}")
    X, T1, _ = success.shape
    if thinker_obs is None:
        thinker_obs = np.arange(X)
    if solver_obs is None:
        solver_obs = np.arange(X * T1).reshape(X, T1)
    states = state_rate * success[:, : T1 - 1, :].mean(axis=-1)
    return TabularGame(name=name, problem_probs=np.asarray(px, float), success=success,
                       thinker_obs=np.asarray(thinker_obs, np.int64), solver_obs=np.asarray(solver_obs, np.int64),
                       states=states, description=description,
                       params={**params, "noise": noise, "state_rate": state_rate})


def helpful_harmful(p0: ArrayLike = (0.3, 0.5, 0.7), delta: float = 0.2, noise: float = 0.0,
                    state_rate: float = 0.1) -> TabularGame:
    """Thoughts helpful / neutral / harmful; the Solver uses or ignores the thought."""
    p0 = np.asarray(p0, float)
    h = np.array([1.0, 0.0, -1.0])
    use = p0[:, None] + delta * h[None, :]  # (X, 3)
    success = np.zeros((p0.size, 4, 2))
    success[:, :3, 0] = use
    success[:, :3, 1] = p0[:, None]
    success[:, 3, :] = p0[:, None]
    if np.any(use < 0) or np.any(use > 1):
        raise ValueError(f"helpful-harmful: p0 ± delta must stay in [0, 1], got p0={p0.tolist()}, delta={delta}")
    return _finish("helpful-harmful", np.full(p0.size, 1 / p0.size), success, noise=noise, state_rate=state_rate,
                   description="helpful / neutral / harmful thoughts (p0+δ, p0, p0−δ) used or ignored by the Solver",
                   params={"p0": p0.tolist(), "delta": delta})


def lazy_thinker(right: float = 0.85, wrong: float = 0.15, delta: float = 0.1, noise: float = 0.0,
                 state_rate: float = 0.1) -> TabularGame:
    """The Solver's approach decides; one thought helps a little."""
    success = np.zeros((1, 4, 2))
    success[0, :, 0], success[0, :, 1] = right, wrong
    success[0, 0, :] += delta / 2
    success[0, 2, :] -= delta / 2
    return _finish("lazy-thinker", [1.0], np.clip(success, 0, 1), noise=noise, state_rate=state_rate,
                   description="the Solver solves alone; thoughts differ by ±δ/2",
                   params={"right": right, "wrong": wrong, "delta": delta})


CLIMBING_PAYOFF = np.array([[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]])


def climbing(noise: float = 0.0, state_rate: float = 0.1) -> TabularGame:
    """The sequential climbing game (Claus & Boutilier), payoffs scaled to probabilities."""
    p = (CLIMBING_PAYOFF + 30.0) / 41.0
    success = np.concatenate([p, p.mean(axis=0, keepdims=True)], axis=0)[None]
    return _finish("climbing", [1.0], success, noise=noise, state_rate=state_rate,
                   description="climbing game [[11,-30,0],[-30,7,6],[0,0,5]], (payoff+30)/41", params={})


def two_step(noise: float = 0.0, state_rate: float = 0.1) -> TabularGame:
    """QMIX's two-step game, sequential: thought = (state, Thinker's move), answer = Solver's move."""
    pay = np.array([[7.0, 7.0], [7.0, 7.0], [0.0, 1.0], [1.0, 8.0]])  # rows: A·0, A·1, B·0, B·1
    p = pay / 8.0
    success = np.concatenate([p, p.mean(axis=0, keepdims=True)], axis=0)[None]
    return _finish("two-step", [1.0], success, noise=noise, state_rate=state_rate,
                   description="two-step game: state A pays 7, state B [[0,1],[1,8]], /8", params={})


def signalling(states: int = 3, right: float = 0.9, wrong: float = 0.1, noise: float = 0.0,
               state_rate: float = 0.1) -> TabularGame:
    """The Thinker sees the hidden state, the Solver only the message."""
    k = int(states)
    if k < 2:
        raise ValueError(f"signalling: states must be >= 2, got {states!r}")
    success = np.full((k, k + 1, k), wrong)
    for x in range(k):
        success[x, :, x] = right
    solver_obs = np.tile(np.arange(k + 1), (k, 1))  # the Solver sees the message only (k = nothing)
    return _finish("signalling", np.full(k, 1 / k), success, noise=noise, state_rate=state_rate,
                   description=f"signalling: {k} hidden states, the Solver sees only the message",
                   params={"states": k, "right": right, "wrong": wrong}, solver_obs=solver_obs)


#: Game name → factory (keyword parameters as in the module docstring).
GAMES: dict[str, Callable[..., TabularGame]] = {
    "helpful-harmful": helpful_harmful,
    "lazy-thinker": lazy_thinker,
    "climbing": climbing,
    "two-step": two_step,
    "signalling": signalling,
}


def available_games() -> list[str]:
    return list(GAMES)


def make_game(name: str, **params: Any) -> TabularGame:
    """The game ``name`` with ``params`` (the keyword parameters of its factory in :data:`GAMES`);
    an unknown name or parameter lists the valid ones."""
    if name not in GAMES:
        raise ValueError(f"unknown tabular game {name!r}; available: {', '.join(GAMES)}")
    fn = GAMES[name]
    accepted = list(inspect.signature(fn).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"game {name!r} has no parameter(s) {unknown}; parameters: {', '.join(accepted)}")
    return fn(**params)


# --------------------------------------------------------------------------- chains of N roles

# Tabular chains of N roles (docs/method.md#teams-of-more-than-two-roles, the last point): the
# ground truth of the N-role lab. The chain's roles r_0 … r_{N−1} act in order; role k picks a
# message a_k ~ π_k(·|o_k) from a softmax table over its observation o_k = obs[k][x, h_0, …, h_{k−1}]
# of the problem and what its predecessors wrote, h_j = a_j for a present role j and h_j = M_j
# (its action count: "absent") for a removed one. The team is right with probability
# success[x, h_0, …, h_{N−1}] (R = +1, else −1): the verifier reads the last present role's text;
# nobody present is −1 (the all-absent entry is 0).

#: The four chains of METHOD.md §10 (see make_chain and the factories below).
CHAIN_GAMES_DOC = """\
``relay-chain``  (``length`` N ≥ 2, ``states`` K) only the first role sees the answer x (uniform over
                 K); every later role sees the last present predecessor's message (or nothing) and
                 writes one of K messages: it may pass the answer on or garble it. The last present
                 role's message m is verified: right with probability ``right`` when m = x, ``wrong``
                 otherwise, times ``state_rate`` when that role is not the last of the chain.
``free-rider``   (``riders`` ≥ 1 useless middle roles, N = riders + 2) the first role sees x and
                 writes a message, the riders see it and write anything, the last role sees the
                 first role's message only (or nothing) and answers. A rider's text forwards what it
                 was shown (verified alone it is its predecessor's text), so every rider is a null
                 player: v(C ∪ {rider}) = v(C) for every C, marginal and Shapley value 0.
``complements``  (``parts`` P ≥ 2, N = P + 1) the answer x = (x_1 … x_P) ∈ K^P; role i sees x_i
                 alone and writes a piece; the last role sees the pieces present and answers one of
                 K^P. A team missing any piece (or the last role) is never right: every role's
                 marginal v(N) − v(N∖{k}) is the whole value v(N) − v(∅).
``substitutes``  (``copies`` ≥ 2, N = copies + 1) x uniform over K; each of the first ``copies``
                 roles reads x from its own source and passes it on (its action, one of
                 ``phrasings``, is how it words it and changes nothing); the last role sees x when
                 any of them is present, nothing otherwise, and answers. Either copy suffices: each
                 copy's marginal is 0 for every policy, and Shapley splits the key's value between
                 them. (Exact zero marginals for all policies force this: if v(N) = v(N∖{i}) for
                 every policy of every copy, no copy's choice can change v(N), so its exact policy
                 gradient is 0; its presence is what counts.)
"""


@dataclass(frozen=True)
class ChainGame:
    """A finite chain of N roles (see the comment above and :data:`CHAIN_GAMES_DOC`).

    ``roles`` (N,) names in chain order; ``problem_probs`` (X,) p(x); ``n_actions`` (N,) M_k;
    ``obs`` one int table per role, ``obs[k]`` of shape (X, M_0+1, …, M_{k−1}+1), the
    observation ids 0..O_k−1; ``success`` (X, M_0+1, …, M_{N−1}+1) P(right) of each history, the
    index M_j marking role j absent (the all-absent entry must be 0: R(∅) = −1)."""

    name: str
    roles: tuple
    problem_probs: np.ndarray
    n_actions: tuple
    obs: tuple
    success: np.ndarray
    description: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        roles = tuple(self.roles)
        if len(roles) < 2 or len(set(roles)) != len(roles) or not all(isinstance(r, str) and r for r in roles):
            raise ValueError(f"chain {self.name!r}: roles must be >= 2 distinct non-empty names, got {list(roles)!r}")
        N = len(roles)
        M = tuple(int(m) for m in self.n_actions)
        if len(M) != N or min(M) < 1:
            raise ValueError(f"chain {self.name!r}: n_actions needs one count >= 1 per role, got {self.n_actions!r}")
        p = np.asarray(self.problem_probs, float)
        if p.ndim != 1 or p.size == 0 or np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
            raise ValueError(f"chain {self.name!r}: problem_probs must be a probability vector, got {p}")
        X, D = p.size, tuple(m + 1 for m in M)
        if len(self.obs) != N:
            raise ValueError(f"chain {self.name!r}: obs needs one table per role, got {len(self.obs)}")
        obs = []
        for k, o in enumerate(self.obs):
            o = np.asarray(o)
            if o.shape != (X,) + D[:k]:
                raise ValueError(f"chain {self.name!r}: obs[{k}] must have shape {(X,) + D[:k]}, got {o.shape}")
            if o.dtype.kind not in "iu" or o.min() < 0:
                raise ValueError(f"chain {self.name!r}: obs[{k}] must hold observation ids 0..O-1")
            o = np.array(o, np.int64)
            o.setflags(write=False)
            obs.append(o)
        s = np.array(self.success, float)
        if s.shape != (X,) + D:
            raise ValueError(f"chain {self.name!r}: success must have shape {(X,) + D}, got {s.shape}")
        if np.any(s < 0) or np.any(s > 1):
            raise ValueError(f"chain {self.name!r}: success probabilities must lie in [0, 1]")
        if np.any(s[(slice(None),) + tuple(M)] != 0):
            raise ValueError(f"chain {self.name!r}: nobody present must never be right (R(∅) = −1)")
        p, s = np.array(p), s
        for arr in (p, s):
            arr.setflags(write=False)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "n_actions", M)
        object.__setattr__(self, "problem_probs", p)
        object.__setattr__(self, "obs", tuple(obs))
        object.__setattr__(self, "success", s)

    @property
    def n_roles(self) -> int:
        return len(self.roles)

    @property
    def n_problems(self) -> int:
        return self.problem_probs.size

    @property
    def n_obs(self) -> tuple:
        """O_k per role (the largest id + 1)."""
        return tuple(int(o.max()) + 1 for o in self.obs)

    @property
    def expected_reward(self) -> np.ndarray:
        """r(x, h) = 2·success − 1, shape (X, M_0+1, …, M_{N−1}+1)."""
        return 2.0 * self.success - 1.0

    def position(self, role: str) -> int:
        if role not in self.roles:
            raise ValueError(f"chain {self.name!r} has no role {role!r}; roles: {', '.join(self.roles)}")
        return self.roles.index(role)

    def coalitions(self, *, proper: bool = False) -> list:
        """Every coalition (frozenset of role names), smallest first; ``proper``: only the
        non-empty ones that are not the whole team."""
        out = [frozenset(c) for size in range(self.n_roles + 1) for c in itertools.combinations(self.roles, size)]
        return [c for c in out if 0 < len(c) < self.n_roles] if proper else out

    def uniform(self) -> list:
        """Uniform policy tables, one (O_k, M_k) per role."""
        return [np.full((o, m), 1.0 / m) for o, m in zip(self.n_obs, self.n_actions)]

    def optimum(self) -> float:
        """The best team success probability over deterministic joint policies: the game's stated
        value (``params["optimum"]``) when it has one, else by enumeration (small games only)."""
        if "optimum" in self.params:
            return float(self.params["optimum"])
        obs_counts, M = self.n_obs, self.n_actions
        count = math.prod(m ** o for o, m in zip(obs_counts, M))
        if count > 200_000:
            raise ValueError(f"chain {self.name!r}: {count} deterministic joint policies are too many to enumerate")
        best = -np.inf
        eyes = [np.eye(m) for m in M]
        for choice in itertools.product(*[itertools.product(range(m), repeat=o) for o, m in zip(obs_counts, M)]):
            pis = [eyes[k][list(c)] for k, c in enumerate(choice)]
            best = max(best, float(chain_values(self, pis).J))
        return (1.0 + best) / 2.0


@dataclass
class ChainValues:
    """Exact quantities of a chain under policy tables (leading batch dims ``…`` kept).

    ``v`` {coalition: (…,)} the team's expected reward with exactly that coalition present
    (v(∅) = −1, v(all roles) = J); ``shapley`` and ``marginal`` {role: (…,)} (Δ_k = v(N) −
    v(N∖{k})); per role k (a list in chain order) for the whole team: ``Q[k]`` (…, X, M_0, …, M_k)
    E[R | x, a_0 … a_k], ``V[k]`` (…, X, M_0, …, M_{k−1}), ``A[k] = Q[k] − V[k]``, ``reach[k]``
    P(a_0 … a_{k−1} | x) and ``grad[k]`` (…, O_k, M_k) ∂J/∂θ_k."""

    roles: tuple
    v: dict
    shapley: dict
    marginal: dict
    Q: list
    V: list
    A: list
    reach: list
    grad: list
    J: np.ndarray
    success: np.ndarray

    def advantages(self, batch: ChainBatch, table: np.ndarray | None = None) -> np.ndarray:
        """The exact advantage A_k(x, a_0 … a_k) of every sampled action of ``batch``, shape
        (G, E, N); with leading batch dims, ``table`` (G,) says which table each group played."""
        G, E, N = batch.actions.shape
        out = np.zeros((G, E, N))
        lead = () if table is None else (np.asarray(table)[:, None],)
        for k in range(N):
            idx = lead + (batch.x[:, None],) + tuple(batch.actions[:, :, j] for j in range(k + 1))
            out[:, :, k] = self.A[k][idx]
        return out


def shapley_weights(n: int) -> np.ndarray:
    """w(s) = s!(n − s − 1)!/n!, the Shapley weight of a coalition of size s without the player."""
    return np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])


def _chain_tables(game: ChainGame, pis: Any) -> list:
    pis = [np.asarray(p, np.float64) for p in pis]
    if len(pis) != game.n_roles:
        raise ValueError(f"chain {game.name!r}: one policy table per role ({game.n_roles}), got {len(pis)}")
    for k, (p, o, m) in enumerate(zip(pis, game.n_obs, game.n_actions)):
        if p.shape[-2:] != (o, m):
            raise ValueError(f"chain {game.name!r}: the table of {game.roles[k]} must end in ({o}, {m}), got {p.shape}")
    lead = np.broadcast_shapes(*[p.shape[:-2] for p in pis])
    return [np.broadcast_to(p, lead + p.shape[-2:]) for p in pis]


def _coalition_value(game: ChainGame, pis: list, present: Sequence[bool]) -> np.ndarray:
    """v(C) for the roles marked present: the history distribution, forward, then E[r]."""
    lead = pis[0].shape[:-2]
    P = np.ones(lead + (game.n_problems,))
    for k, m in enumerate(game.n_actions):
        if present[k]:
            step = P[..., None] * pis[k][..., game.obs[k], :]
            P = np.concatenate([step, np.zeros(step.shape[:-1] + (1,))], axis=-1)
        else:
            P = np.concatenate([np.zeros(P.shape + (m,)), P[..., None]], axis=-1)
    r = game.expected_reward
    return np.einsum("x,...x->...", game.problem_probs, (P * r).reshape(P.shape[:len(lead) + 1] + (-1,)).sum(-1))


def chain_values(game: ChainGame, pis: Sequence[ArrayLike]) -> ChainValues:
    """Every exact value of :class:`ChainValues` for the policy tables ``pis`` (one per role, rows
    of probabilities, matching leading batch dims or none), by enumerating the histories."""
    pis = _chain_tables(game, pis)
    N, roles, M = game.n_roles, game.roles, game.n_actions
    lead = pis[0].shape[:-2]
    v = {}
    for c in game.coalitions():
        v[c] = _coalition_value(game, pis, [r in c for r in roles]) if c else np.full(lead, -1.0)
    everyone = frozenset(roles)
    w = shapley_weights(N)
    shapley, marginal = {}, {}
    for r in roles:
        shapley[r] = sum(w[len(c)] * (v[c | {r}] - v[c]) for c in v if r not in c)
        marginal[r] = v[everyone] - v[everyone - {r}]
    # the whole team: backward values over the histories without absences
    full = tuple(slice(0, m) for m in M)
    obs = [o[(slice(None),) + full[:k]] for k, o in enumerate(game.obs)]  # (X, M_0..M_{k-1})
    pk = [pis[k][..., obs[k], :] for k in range(N)]  # (…, X, M_0..M_{k-1}, M_k)
    W = np.broadcast_to(game.expected_reward[(slice(None),) + full], lead + (game.n_problems,) + M)
    Q, V = [None] * N, [None] * N
    for k in range(N - 1, -1, -1):
        Q[k] = np.array(W)
        V[k] = np.sum(pk[k] * Q[k], axis=-1)
        W = V[k]
    A = [Q[k] - V[k][..., None] for k in range(N)]
    reach = [np.ones(lead + (game.n_problems,))]
    for k in range(N - 1):
        reach.append(reach[k][..., None] * pk[k])
    J = np.einsum("x,...x->...", game.problem_probs, V[0])
    grad = []
    for k in range(N):
        wgt = game.problem_probs.reshape((-1,) + (1,) * (k + 1)) * reach[k][..., None] * pk[k] * A[k]
        onehot = np.eye(game.n_obs[k])[obs[k].reshape(-1)]  # (X·ΠM_<k, O_k)
        grad.append(np.einsum("no,...na->...oa", onehot, wgt.reshape(lead + (-1, M[k]))))
    return ChainValues(roles=roles, v=v, shapley=shapley, marginal=marginal, Q=Q, V=V, A=A, reach=reach, grad=grad,
                       J=J, success=(1 + J) / 2)


# --------------------------------------------------------------------------- sampling chains


@dataclass
class ChainBatch:
    """Sampled episodes of G groups (one problem each), E joint episodes per group, with the
    counterfactual replays of the requested coalitions.

    ``x`` (G,); ``actions`` (G, E, N) each role's message; ``reward`` (G, E) R_joint;
    ``coalitions`` {C: rewards}: (G, E) for a coalition holding the first role (each episode's
    replay on its own prefix: the texts of the roles before the first one missing from C are
    kept, the present roles after it resampled, the last present text verified afresh), (G, m)
    for one without it (m independent plays per problem) — the arrays
    ``algorithms.credit.Outcomes.from_rewards(reward, roles=roles, coalitions=coalitions)`` takes;
    ``generations`` {C: {role: generations per problem}} what each replay cost."""

    roles: tuple
    x: np.ndarray
    actions: np.ndarray
    reward: np.ndarray
    coalitions: dict
    generations: dict

    @property
    def shape(self) -> tuple:
        """(G, E)."""
        return self.reward.shape


def coalition_generations(roles: Sequence[str], coalition: Iterable[str], episodes: int, samples: int) -> dict:
    """Generations per problem, per role, of the replays of ``coalition`` (module docstring of
    :class:`ChainBatch`): on each of ``episodes`` prefixes the present roles after the first
    missing one, or ``samples`` plays of every present role when the first role is missing."""
    roles, c = tuple(roles), frozenset(coalition)
    if roles[0] not in c:
        return {r: (samples if r in c else 0) for r in roles}
    j = next((i for i, r in enumerate(roles) if r not in c), len(roles))
    return {r: (episodes if (r in c and i > j) else 0) for i, r in enumerate(roles)}


def _play(game: ChainGame, pis: list, tables: list, x: np.ndarray, hist: np.ndarray, todo: Sequence[int],
          rng: np.random.Generator) -> np.ndarray:
    """Fill the positions ``todo`` of ``hist`` (G, S, N) in order by sampling, then draw R."""
    for k in todo:
        o = np.broadcast_to(game.obs[k][(x[:, None],) + tuple(hist[:, :, j] for j in range(k))], hist.shape[:2])
        hist[:, :, k] = categorical(pis[k][tables[k][:, None], o], rng)
    s = game.success[(x[:, None],) + tuple(hist[:, :, j] for j in range(game.n_roles))]
    return np.where(rng.random(s.shape) < s, 1.0, -1.0)


def sample_chain(game: ChainGame, pis: Sequence[ArrayLike], rng: np.random.Generator, *, groups: int, episodes: int,
                 samples: int = 4, coalitions: Iterable[Iterable[str]] | None = None,
                 problems: np.ndarray | None = None, branches: int = 1) -> ChainBatch:
    """``groups`` groups of ``episodes`` joint episodes (one problem each: ``problems`` or drawn
    from p(x)) with the replays of ``coalitions`` (default: every proper non-empty one): per
    episode when the coalition holds the first role, ``samples`` plays per problem otherwise.
    ``pis``: one table per role, each (O_k, M_k) or one per group (G, O_k, M_k). ``branches`` K:
    the first role writes episodes/K texts, each continued K times by the rest of the chain
    (text-major: episodes j·K … j·K + K − 1 share text j; K = 1 is the flat batch)."""
    for nm, val, lo in (("groups", groups, 1), ("episodes", episodes, 1), ("samples", samples, 0),
                        ("branches", branches, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"sample_chain: {nm} must be an integer >= {lo}, got {val!r}")
    G, E, m, K = int(groups), int(episodes), int(samples), int(branches)
    if E % K:
        raise ValueError(f"sample_chain: episodes ({E}) must be a multiple of branches ({K})")
    pis = [_per_group(np.asarray(p, np.float64), G, f"the table of {r}") for p, r in zip(pis, game.roles)]
    _chain_tables(game, pis)
    tables = [np.arange(G) if p.shape[0] == G else np.zeros(G, np.int64) for p in pis]
    roles, N, M = game.roles, game.n_roles, game.n_actions
    if problems is None:
        x = categorical(np.broadcast_to(game.problem_probs, (G, game.n_problems)), rng)
    else:
        x = np.asarray(problems, np.int64).reshape(G)
    actions = np.zeros((G, E, N), np.int64)
    if K > 1:
        first = np.zeros((G, E // K, N), np.int64)
        _play(game, pis, tables, x, first, [0], rng)
        actions[:, :, 0] = np.repeat(first[:, :, 0], K, axis=1)
    reward = _play(game, pis, tables, x, actions, range(1 if K > 1 else 0, N), rng)
    wanted = game.coalitions(proper=True) if coalitions is None else [frozenset(c) for c in coalitions]
    out, gens = {}, {}
    for c in wanted:
        if not c or not c < frozenset(roles):
            raise ValueError(f"sample_chain: coalition {sorted(c)} is not a proper non-empty subset of {list(roles)}")
        present = [r in c for r in roles]
        if present[0]:
            j = present.index(False)
            hist = actions.copy()
            hist[:, :, j:] = np.array(M)[j:]
            out[c] = _play(game, pis, tables, x, hist, [k for k in range(j + 1, N) if present[k]], rng)
        else:
            if m == 0:
                raise ValueError(f"sample_chain: coalition {sorted(c)} lacks the first role: it needs samples >= 1")
            hist = np.broadcast_to(np.array(M), (G, m, N)).copy()
            out[c] = _play(game, pis, tables, x, hist, [k for k in range(N) if present[k]], rng)
        gens[c] = coalition_generations(roles, c, E, m)
    return ChainBatch(roles=roles, x=x, actions=actions, reward=reward, coalitions=out, generations=gens)


# --------------------------------------------------------------------------- the chains


def _tabulate(shape: tuple, fn: Callable[..., Any], dtype: Any = np.int64) -> np.ndarray:
    """A table of ``fn(x, h_0, …)`` over every index of ``shape``."""
    out = np.zeros(shape, dtype)
    for idx in np.ndindex(*shape):
        out[idx] = fn(*idx)
    return out


def _chain_roles(roles: Sequence[str] | None, default: tuple, n: int, name: str) -> tuple:
    roles = default if roles is None else tuple(roles)
    if len(roles) != n:
        raise ValueError(f"{name}: needs {n} role names, got {list(roles)!r}")
    return roles


def _answer_rates(right: float, wrong: float, noise: float) -> tuple[float, float]:
    if not 0 <= wrong <= right <= 1:
        raise ValueError(f"right and wrong must satisfy 0 <= wrong <= right <= 1, got {right!r}, {wrong!r}")
    return float(_noisy(right, noise)), float(_noisy(wrong, noise))


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def relay_chain(length: int = 3, states: int = 3, right: float = 0.9, wrong: float = 0.1, state_rate: float = 0.1,
                noise: float = 0.0, roles: Sequence[str] | None = None) -> ChainGame:
    """Only the first role sees the answer; every later role passes on (or garbles) the last
    message it is shown; the last present role's message is verified."""
    N, K = _check_int("relay-chain: length", length, 2), _check_int("relay-chain: states", states, 2)
    if not 0 <= state_rate <= 1:
        raise ValueError(f"state_rate must be in [0, 1], got {state_rate!r}")
    hi, lo = _answer_rates(right, wrong, noise)
    default = ("thinker_0",) + tuple(f"relay_{i}" for i in range(N - 2)) + ("solver_0",)
    roles = _chain_roles(roles, default, N, "relay-chain")

    def shown(h: tuple) -> int:  # the last present predecessor's message, K for none
        return next((m for m in reversed(h) if m < K), K)

    obs = [np.arange(K)] + [_tabulate((K,) + (K + 1,) * k, lambda x, *h: shown(h)) for k in range(1, N)]

    def success(x: int, *h: int) -> float:
        last = next((k for k in range(N - 1, -1, -1) if h[k] < K), None)
        if last is None:
            return 0.0
        p = hi if h[last] == x else lo
        return p if last == N - 1 else state_rate * p

    return ChainGame("relay-chain", roles, np.full(K, 1 / K), (K,) * N, tuple(obs),
                     _tabulate((K,) + (K + 1,) * N, success, float),
                     description=f"relay chain of {N}: only the first role sees the answer (1 of {K}); each later "
                                 "role passes on or garbles the last message it is shown",
                     params={"length": N, "states": K, "right": right, "wrong": wrong, "state_rate": state_rate,
                             "noise": noise, "optimum": hi})


def free_rider(riders: int = 1, states: int = 3, right: float = 0.9, wrong: float = 0.1, state_rate: float = 0.1,
               noise: float = 0.0, roles: Sequence[str] | None = None) -> ChainGame:
    """A first role that knows the answer, ``riders`` useless middle roles, a last role that reads
    the first role's message only; a rider's text forwards what it was shown."""
    R, K = _check_int("free-rider: riders", riders, 1), _check_int("free-rider: states", states, 2)
    if not 0 <= state_rate <= 1:
        raise ValueError(f"state_rate must be in [0, 1], got {state_rate!r}")
    hi, lo = _answer_rates(right, wrong, noise)
    N = R + 2
    roles = _chain_roles(roles, ("thinker_0",) + tuple(f"rider_{i}" for i in range(R)) + ("solver_0",), N, "free-rider")
    obs = [np.arange(K)] + [_tabulate((K,) + (K + 1,) * k, lambda x, h0, *h: h0) for k in range(1, N)]

    def success(x: int, h0: int, *rest: int) -> float:
        a = rest[-1]
        if a < K:  # the last role answers from the first role's message (or nothing)
            return hi if a == x else lo
        if h0 < K:  # the first role's text, forwarded by any rider after it, verified alone
            return state_rate * (hi if h0 == x else lo)
        return 0.0  # riders alone have nothing to forward

    return ChainGame("free-rider", roles, np.full(K, 1 / K), (K,) * N, tuple(obs),
                     _tabulate((K,) + (K + 1,) * N, success, float),
                     description=f"free rider: {R} useless middle role(s) between a first role that knows the answer "
                                 f"(1 of {K}) and a last role that reads only the first",
                     params={"riders": R, "states": K, "right": right, "wrong": wrong, "state_rate": state_rate,
                             "noise": noise, "optimum": hi})


def complements(parts: int = 2, states: int = 2, right: float = 0.9, wrong: float = 0.1, noise: float = 0.0,
                roles: Sequence[str] | None = None) -> ChainGame:
    """The answer has ``parts`` pieces, each seen by one role; the last role needs them all."""
    P, K = _check_int("complements: parts", parts, 2), _check_int("complements: states", states, 2)
    hi, lo = _answer_rates(right, wrong, noise)
    N, X = P + 1, K**P
    roles = _chain_roles(roles, tuple(f"thinker_{i}" for i in range(P)) + ("solver_0",), N, "complements")
    digits = np.array(list(itertools.product(range(K), repeat=P)))  # x -> (x_1 … x_P)
    obs = [_tabulate((X,) + (K + 1,) * i, lambda x, *h, i=i: digits[x, i]) for i in range(P)]
    obs.append(_tabulate((X,) + (K + 1,) * P, lambda x, *h: int(np.ravel_multi_index(h, (K + 1,) * P))))

    def success(x: int, *h: int) -> float:
        pieces, a = h[:P], h[P]
        if a == X or any(m == K for m in pieces):
            return 0.0
        return hi if a == x else lo

    return ChainGame("complements", roles, np.full(X, 1 / X), (K,) * P + (X,), tuple(obs),
                     _tabulate((X,) + (K + 1,) * P + (X + 1,), success, float),
                     description=f"complements: {P} roles each see one piece (1 of {K}) of the answer, the last role "
                                 "needs every piece",
                     params={"parts": P, "states": K, "right": right, "wrong": wrong, "noise": noise, "optimum": hi})


def substitutes(copies: int = 2, states: int = 3, phrasings: int = 2, right: float = 0.9, wrong: float = 0.1,
                state_rate: float = 0.1, noise: float = 0.0, roles: Sequence[str] | None = None) -> ChainGame:
    """``copies`` roles each bring the answer from their own source; either one suffices."""
    C, K = _check_int("substitutes: copies", copies, 2), _check_int("substitutes: states", states, 2)
    F = _check_int("substitutes: phrasings", phrasings, 1)
    if not 0 <= state_rate <= 1:
        raise ValueError(f"state_rate must be in [0, 1], got {state_rate!r}")
    hi, lo = _answer_rates(right, wrong, noise)
    N = C + 1
    roles = _chain_roles(roles, tuple(f"thinker_{i}" for i in range(C)) + ("solver_0",), N, "substitutes")
    obs = [_tabulate((K,) + (F + 1,) * i, lambda x, *h: x) for i in range(C)]
    obs.append(_tabulate((K,) + (F + 1,) * C, lambda x, *h: x if any(m < F for m in h) else K))

    def success(x: int, *h: int) -> float:
        copies_, a = h[:C], h[C]
        if a < K:
            return hi if a == x else lo
        return state_rate * hi if any(m < F for m in copies_) else 0.0

    return ChainGame("substitutes", roles, np.full(K, 1 / K), (F,) * C + (K,), tuple(obs),
                     _tabulate((K,) + (F + 1,) * C + (K + 1,), success, float),
                     description=f"substitutes: {C} roles each bring the answer (1 of {K}) from their own source, either "
                                 "suffices; the last role answers",
                     params={"copies": C, "states": K, "phrasings": F, "right": right, "wrong": wrong,
                             "state_rate": state_rate, "noise": noise, "optimum": hi})


def chain_from_game(game: TabularGame, roles: Sequence[str] = ("thinker_0", "solver_0")) -> ChainGame:
    """A two-role :class:`TabularGame` as a :class:`ChainGame` (the same values: v({solver}) = b,
    v({thinker}) from ``states``, J and both gradients)."""
    X, T, A = game.n_problems, game.n_thoughts, game.n_answers
    success = np.zeros((X, T + 1, A + 1))
    success[:, :, :A] = game.success
    success[:, :T, A] = game.states
    return ChainGame(game.name, tuple(roles), game.problem_probs, (T, A), (game.thinker_obs, game.solver_obs), success,
                     description=game.description, params=dict(game.params))


#: Chain name → factory (keyword parameters as in :data:`CHAIN_GAMES_DOC`).
CHAIN_GAMES: dict[str, Callable[..., ChainGame]] = {
    "relay-chain": relay_chain,
    "free-rider": free_rider,
    "complements": complements,
    "substitutes": substitutes,
}


def available_chains() -> list[str]:
    return list(CHAIN_GAMES)


def make_chain(name: str, **params: Any) -> ChainGame:
    """The chain ``name`` with ``params`` (the keyword parameters of its factory in
    :data:`CHAIN_GAMES`); an unknown name or parameter lists the valid ones."""
    if name not in CHAIN_GAMES:
        raise ValueError(f"unknown tabular chain {name!r}; available: {', '.join(CHAIN_GAMES)}")
    fn = CHAIN_GAMES[name]
    accepted = list(inspect.signature(fn).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"chain {name!r} has no parameter(s) {unknown}; parameters: {', '.join(accepted)}")
    return fn(**params)
