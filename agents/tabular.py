"""Tabular softmax policies with exact log-prob gradients (for the tabular games of
:mod:`thinksolve_env.games`).

A table of logits θ (…, O, A) — one row per observation, any leading batch dimensions (one table
per seed, so a learning run over many seeds is one array operation):

    π(a | o) = softmax(θ[o])_a = exp(θ[o, a]/τ) / Σ_b exp(θ[o, b]/τ)
    ∂ log π(a | o) / ∂θ[o', b] = [o' = o]·([b = a] − π(b | o))/τ

:meth:`TabularSoftmaxPolicy.score_gradient` sums w_i·∇_θ log π(a_i | o_i) over samples (the
sampled policy gradient with advantages w_i); :meth:`TabularSoftmaxPolicy.ascend` takes a step.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["TabularSoftmaxPolicy", "softmax"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (last axis), numerically stable."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class TabularSoftmaxPolicy:
    """π(·|o) = softmax(θ[o]/τ) over ``n_actions`` actions for ``n_obs`` observations.

    Args:
        n_obs, n_actions: the table's shape (O, A).
        batch: leading dimensions (e.g. ``(seeds,)``), one independent table each.
        logits: initial θ, broadcast to ``batch + (O, A)`` (default zeros: uniform).
        temperature: τ > 0.
    """

    def __init__(self, n_obs: int, n_actions: int, *, batch: tuple[int, ...] = (), logits: ArrayLike | None = None,
                 temperature: float = 1.0) -> None:
        for nm, v in (("n_obs", n_obs), ("n_actions", n_actions)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"TabularSoftmaxPolicy: {nm} must be an integer >= 1, got {v!r}")
        if not temperature > 0:
            raise ValueError(f"TabularSoftmaxPolicy: temperature must be > 0, got {temperature!r}")
        self.n_obs, self.n_actions, self.temperature = int(n_obs), int(n_actions), float(temperature)
        self.batch = tuple(int(b) for b in batch)
        shape = self.batch + (self.n_obs, self.n_actions)
        if logits is None:
            self.logits = np.zeros(shape)
        else:
            logits = np.asarray(logits, np.float64)
            try:
                self.logits = np.array(np.broadcast_to(logits, shape))
            except ValueError:
                raise ValueError(
                    f"TabularSoftmaxPolicy: logits of shape {logits.shape} do not broadcast to {shape}"
                ) from None
        if not np.all(np.isfinite(self.logits)):
            raise ValueError("TabularSoftmaxPolicy: logits must be finite")

    @property
    def probs(self) -> np.ndarray:
        """π as a table (…, O, A)."""
        return softmax(self.logits, self.temperature)

    def _rows(self, obs: np.ndarray) -> tuple:
        obs = np.asarray(obs, np.int64)
        if obs.shape[: len(self.batch)] != self.batch:
            raise ValueError(f"obs must start with the policy's batch dimensions {self.batch}, got shape {obs.shape}")
        if obs.size and (obs.min() < 0 or obs.max() >= self.n_obs):
            raise ValueError(f"observations must be in 0..{self.n_obs - 1}")
        lead = np.meshgrid(*[np.arange(b) for b in self.batch], indexing="ij")
        extra = obs.ndim - len(self.batch)
        lead = tuple(ix.reshape(ix.shape + (1,) * extra) for ix in lead)
        return lead, obs

    def log_prob(self, obs: ArrayLike, actions: ArrayLike) -> np.ndarray:
        """log π(a | o) for samples ``obs``, ``actions`` of shape ``batch + (N…)``."""
        lead, obs = self._rows(obs)
        logp = np.log(self.probs)
        return logp[lead + (obs, np.asarray(actions, np.int64))]

    def sample(self, obs: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """One action per observation (shape ``batch + (N…)``)."""
        lead, obs = self._rows(obs)
        p = self.probs[lead + (obs,)]
        cdf = np.cumsum(p, axis=-1)
        u = rng.random(p.shape[:-1] + (1,))
        return np.minimum((u >= cdf).sum(axis=-1), self.n_actions - 1)

    def score_gradient(self, obs: ArrayLike, actions: ArrayLike, weights: ArrayLike) -> np.ndarray:
        """Σ_i w_i·∇_θ log π(a_i | o_i), shape ``batch + (O, A)`` (exact, per the module docstring)."""
        lead, obs = self._rows(obs)
        actions = np.asarray(actions, np.int64)
        w = np.asarray(weights, np.float64)
        if actions.shape != obs.shape or w.shape != obs.shape:
            raise ValueError(
                f"obs, actions and weights must have one shape, got {obs.shape}, {actions.shape}, {w.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= self.n_actions):
            raise ValueError(f"actions must be in 0..{self.n_actions - 1}")
        p = self.probs[lead + (obs,)]  # (…, N, A)
        contrib = -p * w[..., None]
        onehot = np.zeros_like(contrib)
        np.put_along_axis(onehot, actions[..., None], 1.0, axis=-1)
        contrib += onehot * w[..., None]
        grad = np.zeros(self.logits.shape)
        lead_b = tuple(np.broadcast_to(ix, obs.shape) for ix in lead)
        np.add.at(grad, lead_b + (obs,), contrib / self.temperature)
        return grad

    def ascend(self, grad: ArrayLike, lr: float) -> None:
        """θ ← θ + lr·grad (gradient ascent on the objective)."""
        grad = np.asarray(grad, np.float64)
        if grad.shape != self.logits.shape:
            raise ValueError(f"grad must have the table's shape {self.logits.shape}, got {grad.shape}")
        self.logits += lr * grad

    def __repr__(self) -> str:
        return f"TabularSoftmaxPolicy(n_obs={self.n_obs}, n_actions={self.n_actions}, batch={self.batch})"
