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
from collections.abc import Callable
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
