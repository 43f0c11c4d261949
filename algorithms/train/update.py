"""The policy update of one role on one rollout batch: micro-batched, gradient-accumulated, clipped.

:func:`policy_update` is what :meth:`~algorithms.train.Trainer.step` calls per scheduled role:
``ppo_epochs`` passes, each one AdamW step over the whole batch. A pass is split by
:func:`micro_batches` into groups of sequences whose padded size fits ``micro_batch_tokens``;
each micro-batch's loss is weighted by its share of the whole batch's aggregate
(:func:`~algorithms.optim.losses.micro_batch_share`) before ``backward``, so the accumulated
gradient is the full batch's gradient for every aggregation mode (token- and sequence-level
losses alike; :func:`accumulate_gradients` is that one pass, and a test holds it to the
one-batch gradient). Old log-probs are the sampling-time ones (``Completion.logprobs``); with a
frozen ``reference`` policy its log-probs feed the KL term.

Under data parallelism the caller passes the wrapped model (``wrapped``, e.g. DDP) and a
``no_sync`` context factory: gradients are all-reduced once, at the last micro-batch. Under
FSDP every forward and backward is a collective, so the caller also passes ``equalize`` (the
largest micro-batch count over the ranks): each micro-batch is then one forward, and a rank with
fewer micro-batches runs zero-weight ones (a forward and backward of its first sequence times
0) until every rank has run the same number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from ..config import OptimConfig
from ..optim import losses

__all__ = ["micro_batches", "pad", "accumulate_gradients", "policy_update", "training_view"]


def micro_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive index groups whose padded size (count × longest sequence) fits ``budget``
    tokens (a sequence longer than the budget gets a micro-batch of its own)."""
    out: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i, n in enumerate(lengths):
        if cur and (len(cur) + 1) * max(longest, n) > budget:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


def pad(seqs: Sequence[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D tensors to ``(len(seqs), width)`` float32; returns the matrix and its mask."""
    out = torch.zeros(len(seqs), width, dtype=torch.float32)
    mask = torch.zeros(len(seqs), width, dtype=torch.float32)
    rows = []
    for i, s in enumerate(seqs):
        mask[i, : len(s)] = 1
        rows.append(torch.nn.functional.pad(s.float(), (0, width - len(s))))
    return torch.stack(rows) if rows else out, mask


@contextlib.contextmanager
def training_view(policy: Any, wrapped: Any) -> Any:
    """Route ``policy.logprobs`` through ``wrapped`` (a DDP/FSDP wrapper of ``policy.model``) while
    updating, so the wrapper's gradient hooks run."""
    if wrapped is None or wrapped is policy.model:
        yield
        return
    plain = policy.model
    policy.model = wrapped
    try:
        yield
    finally:
        policy.model = plain


def _sequence_lengths(completions: Sequence[Any]) -> list[int]:
    """Prompt plus completion tokens of each sample (what a forward pass costs)."""
    return [len(getattr(c, "prompt_token_ids", []) or []) + len(c.token_ids) for c in completions]


def _reference_logprobs(reference: Any, prompts: Sequence[Any], completions: Sequence[Any],
                        batches: list[list[int]], rounds: int | None = None) -> list[torch.Tensor]:
    out: list[Any] = [None] * len(prompts)
    with torch.no_grad():
        for idx in batches:
            kw = {} if rounds is None else {"batch_size": len(idx)}  # sharded: one forward per micro-batch
            for i, lp in zip(idx, reference.logprobs([prompts[i] for i in idx], [completions[i] for i in idx], **kw)):
                out[i] = lp.float()
        for _ in range(len(batches), rounds or 0):  # a sharded reference: as many forwards as every rank
            reference.logprobs(prompts[:1], completions[:1])
    return out


def accumulate_gradients(policy: Any, prompts: Sequence[Any], completions: Sequence[Any], advantages: torch.Tensor,
                         optim: OptimConfig, *, loss_fn: Callable | None = None, batches: list[list[int]] | None = None,
                         ref_logprobs: Sequence[torch.Tensor] | None = None,
                         no_sync: Callable[[], AbstractContextManager] | None = None,
                         rounds: int | None = None, max_len: int | None = None) -> dict[str, float]:
    """One pass over the batch: ``backward`` of every micro-batch's loss, weighted by its share of
    the whole batch's aggregate, into the parameters' ``.grad`` (not zeroed here). Returns the
    loss metrics, each the batch-weighted sum over micro-batches.

    ``batches`` defaults to :func:`micro_batches` at ``optim.micro_batch_tokens``; ``no_sync``
    (a context factory) wraps every micro-batch but the last. ``rounds`` (FSDP: the largest
    micro-batch count over the ranks) makes each micro-batch one forward pass and pads the pass
    with zero-weight micro-batches up to that count. ``max_len`` is the L of the Dr. GRPO
    aggregations (``seq-mean-token-sum-norm-*``): the role's generation budget, as TRL's
    ``max_completion_length`` and verl's response length; default the batch's longest completion."""
    loss_fn = loss_fn or losses.get(optim.loss)
    old = [torch.tensor(c.logprobs, dtype=torch.float32) for c in completions]
    width = max((len(x) for x in old), default=0)
    if batches is None:
        batches = micro_batches(_sequence_lengths(completions), optim.micro_batch_tokens)
    n_tok, n_seq = sum(len(x) for x in old), sum(1 for x in old if len(x))  # B': non-empty rows
    sums: dict[str, float] = {}
    if rounds is not None and rounds > len(batches):
        # collectives must pair up across ranks: zero-weight passes over one sequence
        _zero_weight_passes(policy, [prompts[0]], [completions[0]], rounds - len(batches))
    for k, idx in enumerate(batches):
        last = k == len(batches) - 1
        with no_sync() if (no_sync is not None and not last) else contextlib.nullcontext():
            logp = policy.logprobs([prompts[i] for i in idx], [completions[i] for i in idx],
                                   **({"batch_size": len(idx)} if rounds is not None else {}))
            cur, mask = pad(logp, width)
            loss, metrics = loss_fn(
                cur, pad([old[i] for i in idx], width)[0], advantages[idx], mask,
                clip_low=optim.clip_low, clip_high=optim.clip_high, dual_clip=optim.dual_clip, agg=optim.agg,
                ref_logp=None if ref_logprobs is None else pad([ref_logprobs[i] for i in idx], width)[0],
                kl_coef=optim.kl_coef, kl_type=optim.kl_type, max_len=max(width, max_len or 0),
            )
            share = losses.micro_batch_share(optim.agg, mask, n_tok, n_seq)  # its share of the batch's aggregate
            (loss * share).backward()
        for key, v in metrics.items():
            sums[key] = sums.get(key, 0.0) + v * share
    return sums


def _zero_weight_passes(policy: Any, prompts: Sequence[Any], completions: Sequence[Any], n: int) -> None:
    """``n`` forward and backward passes that add nothing to the gradients (their loss times 0):
    the collectives of FSDP's forward and backward, for a rank with fewer micro-batches."""
    for _ in range(n):
        logp = policy.logprobs(prompts, completions, batch_size=1)
        (sum(lp.sum() for lp in logp) * 0.0).backward()


def policy_update(policy: Any, optimizer: torch.optim.Optimizer, prompts: Sequence[Any], completions: Sequence[Any],
                  advantages: torch.Tensor, optim: OptimConfig, *, optimizer_step: int = 0, loss_fn: Callable | None = None,
                  reference: Any = None, wrapped: Any = None,
                  no_sync: Callable[[], AbstractContextManager] | None = None,
                  equalize: Callable[[int], int] | None = None, max_len: int | None = None) -> dict[str, float]:
    """``optim.ppo_epochs`` clipped policy-gradient steps of ``policy`` on one rollout batch.

    ``optimizer_step`` is the number of steps this optimizer has taken (the learning-rate warm-up
    reads it); the returned metrics hold ``optimizer_steps`` (the steps taken here, to add to it),
    the loss metrics averaged over epochs, ``grad_norm``, ``lr``, ``micro_batches`` and the
    advantages' mean and mean absolute value.

    ``equalize`` (sharded models: the largest of an integer over the ranks) pads every rank's
    pass to the same number of micro-batches (see :func:`accumulate_gradients`). ``max_len``: the
    L of the Dr. GRPO aggregations (:func:`accumulate_gradients`). The gradients are freed after
    the last optimizer step."""
    loss_fn = loss_fn or losses.get(optim.loss)
    params = [p for p in policy.parameters() if p.requires_grad]
    batches = micro_batches(_sequence_lengths(completions), optim.micro_batch_tokens)
    rounds = equalize(len(batches)) if equalize is not None else None
    ref = _reference_logprobs(reference, prompts, completions, batches, rounds) if reference is not None else None
    sums: dict[str, float] = {}
    policy.train()
    try:
        with training_view(policy, wrapped):
            for epoch in range(optim.ppo_epochs):
                for group in optimizer.param_groups:  # linear warm-up, then constant
                    group["lr"] = optim.lr * min(1.0, (optimizer_step + epoch + 1) / (optim.warmup_steps + 1))
                optimizer.zero_grad(set_to_none=True)
                metrics = accumulate_gradients(policy, prompts, completions, advantages, optim, loss_fn=loss_fn,
                                               batches=batches, ref_logprobs=ref, no_sync=no_sync, rounds=rounds,
                                               max_len=max_len)
                for key, v in metrics.items():
                    sums[key] = sums.get(key, 0.0) + v / optim.ppo_epochs
                norm = torch.nn.utils.clip_grad_norm_(params, optim.grad_clip if optim.grad_clip > 0 else float("inf"))
                if hasattr(norm, "full_tensor"):  # sharded gradients: the norm over every shard
                    norm = norm.full_tensor()
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(norm) / optim.ppo_epochs
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # gradients live only during the update
    finally:
        policy.eval()
    sums["lr"] = optimizer.param_groups[0]["lr"]
    sums["micro_batches"] = len(batches)
    sums["advantage_mean"] = float(advantages.float().mean())
    sums["advantage_abs_mean"] = float(advantages.float().abs().mean())
    sums["optimizer_steps"] = optim.ppo_epochs
    return sums
