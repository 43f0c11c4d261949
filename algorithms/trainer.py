"""The trainer: one training step, top to bottom (METHOD.md §6 reference loop).

``Trainer(config).train()`` repeats :meth:`Trainer.step`, which reads in order:

1. **problems** — ``rollout.problems_per_step`` problems drawn with a generator seeded by
   ``(seed, step)``; under ``accelerate launch`` each rank takes its shard ``[rank::world]``;
2. **collect** — :func:`~algorithms.rollout.collect_groups`: both roles sampled, ``group_size``
   joint episodes per problem plus the counterfactuals the credit method requires;
3. **credit** — the credit method turns outcomes into one reward per role and joint episode
   (on every rank over the *whole* batch, gathered, so its state stays identical);
4. **advantages** — per role, the configured estimator over the groups;
5. **update** — the role(s) the schedule picks this step (``alternate``: one role for ``period``
   steps, then the other; ``simultaneous``: both): ``ppo_epochs`` passes over the rollout, each
   pass micro-batched by a token budget (gradients accumulated, all-reduced by DDP at the last
   micro-batch), grad-norm clip, AdamW with linear warm-up. Old log-probs are the sampling-time
   ones (``Completion.logprobs``); with ``kl_coef > 0`` a frozen copy of the initial weights
   supplies the reference log-probs;
6. **metrics** — one JSON row in ``OUT/metrics.jsonl`` (and TensorBoard when installed);
7. **checkpoint** — every ``save_every`` steps and at the end, atomically, in ``OUT/checkpoint/``.

Exact resume: all randomness of a step is seeded from ``(seed, step, rank)``, and the checkpoint
holds weights, optimizer states, credit state, RNG states and the step, so a run resumed at step
k continues exactly as the uninterrupted run. Ctrl-C or SIGTERM finishes the current step,
writes a checkpoint and exits (a second signal aborts at once, keeping the last checkpoint).

The run directory (:mod:`algorithms.runs`) has one writer: a ``Trainer`` holds its lock from
construction to :meth:`Trainer.close`, refuses a directory that already holds a run unless it
resumes it, and on resume cuts ``metrics.jsonl`` back to the checkpoint's step. Every data
source, the device and the model names are checked before anything is loaded.

Models (``model.sharing``): ``separate`` (reference: one full model per role), ``shared`` (one
model, the roles differ by prompt; each role still has its own AdamW state), ``lora`` (one frozen
base with one LoRA adapter per role).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents import TransformersPolicy
from agents.models import load_model
from thinksolve_env import MathVerifier, load_problems

from . import credit as credit_registry
from . import estimators, losses
from .checkpoint import capture_rng, config_diff, json_default, load_checkpoint, restore_rng, save_checkpoint
from .config import ROLES, ConfigError, TrainerConfig, prompt_templates
from .diagnostics import collaboration_diagnostics
from .rollout import collect_groups
from .runs import EVALS, METRICS, RunLock, RunLockedError, append_row, check_model_source, is_run, reconcile_metrics

__all__ = ["Trainer", "ResumeError", "RunLockedError", "TrainingInterrupted", "step_seed", "micro_batches",
           "scheduled_roles", "RESUMABLE_CHANGES"]

THINKER, SOLVER = ROLES
#: Config fields a resumed run may change (none of them changes what a step computes).
RESUMABLE_CHANGES = ("steps", "out", "save_every", "eval_every", "tensorboard")

_say = functools.partial(print, flush=True)  # progress lines show at once under tee, nohup, a log file


class ResumeError(RuntimeError):
    """``--resume`` found a checkpoint from a different configuration, or a fresh run found an
    existing one."""


class TrainingInterrupted(KeyboardInterrupt):
    """:meth:`Trainer.train` stopped on SIGINT/SIGTERM after saving; ``signum`` says which (the
    CLI exits with ``128 + signum``: 130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _load_data(field: str, source):
    """``load_problems(source)``, its errors named after the config field."""
    try:
        return load_problems(source)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{field}={source!r}: {e}") from None


def _open_run_dir(out: Path) -> RunLock:
    """Create ``out`` if needed, check it is a writable directory, and take its lock."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} is a file, not a directory: choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"out={str(out)!r}: cannot create the run directory ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"out={str(out)!r}: the directory is not writable by this user: choose another --out")
    try:
        return RunLock(out).acquire()
    except PermissionError as e:
        raise ConfigError(f"out={str(out)!r}: cannot write in the run directory ({e.strerror or e})") from None


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of everything random in step ``step`` on rank ``rank`` (a 31-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1)[0] >> 1)


def micro_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive index groups whose padded size (count × longest sequence) fits ``budget``
    tokens (a sequence longer than the budget gets a micro-batch of its own)."""
    out, cur, longest = [], [], 0
    for i, n in enumerate(lengths):
        if cur and (len(cur) + 1) * max(longest, n) > budget:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    return out


def scheduled_roles(schedule, step: int) -> list[str]:
    """The roles updated at ``step`` (0-based): both (``simultaneous``), or one, starting with
    ``start_role`` and switching every ``period`` steps (``alternate``)."""
    if schedule.mode == "simultaneous":
        return list(ROLES)
    first = ROLES.index(schedule.start_role)
    return [ROLES[(first + step // schedule.period) % 2]]


class _Dist:
    """Data parallelism through ``accelerate`` when launched with several processes."""

    def __init__(self, device: str, lora: bool) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.accelerator = None
        self.rank = 0
        if self.world > 1:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs

            handlers = [DistributedDataParallelKwargs(find_unused_parameters=lora)]
            self.accelerator = Accelerator(cpu=device == "cpu", kwargs_handlers=handlers)
            self.rank = self.accelerator.process_index
            self.world = self.accelerator.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        """The model DDP/FSDP-wrapped for training (the model itself on one process)."""
        return self.accelerator.prepare_model(model) if self.accelerator else model

    def no_sync(self, wrapped):
        if self.accelerator is None or not hasattr(wrapped, "no_sync"):
            return contextlib.nullcontext()
        return wrapped.no_sync()

    def gather(self, obj: Any) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


@contextlib.contextmanager
def _training_view(policy: TransformersPolicy, wrapped):
    """Route ``policy.logprobs`` through the DDP wrapper (gradient all-reduce) while updating."""
    plain = policy.model
    policy.model = wrapped
    try:
        yield
    finally:
        policy.model = plain


class _RolePolicy(TransformersPolicy):
    """One role's view of a shared LoRA model: activates the role's adapter for every call
    and exposes only that adapter's parameters."""

    def __init__(self, model, tokenizer, role: str, **kw) -> None:
        super().__init__(model, tokenizer, **kw)
        self.role = role

    def _activate(self):
        self._base_peft().set_adapter(self.role)

    def _base_peft(self):
        m = self.model
        return getattr(m, "module", m)

    def generate(self, *a, **kw):
        self._activate()
        return super().generate(*a, **kw)

    def logprobs(self, *a, **kw):
        self._activate()
        return super().logprobs(*a, **kw)

    def named_parameters(self):
        return ((n, p) for n, p in self._base_peft().named_parameters() if f".{self.role}." in n)

    def parameters(self):
        return (p for _, p in self.named_parameters())

    @property
    def is_peft(self) -> bool:
        return True

    def _base_model(self):
        return self._base_peft().get_base_model()


class Trainer:
    """Collect → credit → advantages → update per role, with checkpoints and metrics.

    Args:
        config: a :class:`~algorithms.config.TrainerConfig` (validated here).
        resume: continue from ``config.out/checkpoint`` (refused if its config differs in any
            field but ``steps`` and ``out``).
        log: where progress lines go (``None`` silences them).
    """

    def __init__(self, config: TrainerConfig, *, resume: bool = False, log=_say, writer: bool = True) -> None:
        self.config = cfg = copy.deepcopy(config).validate()
        self.out = Path(cfg.out)
        self.dist = _Dist(cfg.model.device, cfg.model.sharing == "lora")
        self.log = log if self.dist.main else None
        self.writer = writer
        if cfg.rollout.problems_per_step < self.dist.world:
            raise ConfigError(f"rollout.problems_per_step={cfg.rollout.problems_per_step} is invalid with "
                              f"{self.dist.world} processes: allowed >= {self.dist.world} (each rank needs a problem)")
        # Checks before anything is loaded or written: device, every data source, model sources.
        self._check_device()
        self.problems = _load_data("train_data", cfg.train_data)
        self.eval_problems = _load_data("eval_data", cfg.eval_data)
        if cfg.warm_start.enabled:
            from .warmstart import warm_start_path

            if not (warm_start_path(cfg.warm_start, cfg.model.name, cfg.rollout.prompts) / "config.json").exists():
                _load_data("warm_start.data", cfg.warm_start.data)
        for field_name in ("name", "solver_name"):
            if getattr(cfg.model, field_name):
                try:
                    check_model_source(getattr(cfg.model, field_name), field=f"model.{field_name}")
                except ValueError as e:
                    raise ConfigError(str(e)) from None
        # One writer per run directory: the lock first, then the run's files.
        self._lock = None
        self._tb = None
        self._threads_before = torch.get_num_threads()
        created = not self.out.exists()
        if writer and self.dist.main:
            self._lock = _open_run_dir(self.out)
        try:
            if writer and self.dist.main and not resume:
                if is_run(self.out):
                    raise ResumeError(f"{self.out} already holds a run (checkpoint/); pass resume=True (--resume) to "
                                      "continue it, or choose another out (--out)")
                for name in (METRICS, EVALS):
                    moved = reconcile_metrics(self.out / name, 0)["cut_to"]
                    if moved and self.log:
                        self.log(f"{self.out / name} held rows of an earlier run without a checkpoint; moved to {moved}")
            if writer and self.dist.main and cfg.tensorboard and importlib.util.find_spec("tensorboard") is None:
                self._tb = False
                if self.log:
                    self.log("tensorboard=true, but the tensorboard package is not installed: metrics go to "
                             f"{self.out / METRICS} only (pip install tensorboard, or set tensorboard=false)")
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            torch.manual_seed(cfg.seed)
            np.random.seed(cfg.seed % 2**32)

            self.credit = credit_registry.get(cfg.credit.name, **cfg.credit.params)
            self.estimator = estimators.get(cfg.optim.estimator)
            self.loss_fn = losses.get(cfg.optim.loss)
            self.policies = self._build_policies()
            # One trainable policy per role (the same object for both under `shared`), its wrapped
            # (DDP) model for updates, its AdamW. Frozen reference copies only when a KL is asked for.
            self.wrapped = {role: self.dist.wrap(self.policies[role].model) if cfg.model.sharing != "lora" else None
                            for role in ROLES}
            if cfg.model.sharing == "shared":
                self.wrapped[SOLVER] = self.wrapped[THINKER]
            if cfg.model.sharing == "lora":
                wrapped = self.dist.wrap(self.policies[THINKER].model)
                self.wrapped = {role: wrapped for role in ROLES}
            self.optimizers = {
                role: torch.optim.AdamW(list(self.policies[role].parameters()), lr=cfg.optim.lr,
                                        weight_decay=cfg.optim.weight_decay)
                for role in ROLES
            }
            self.reference = self._build_reference() if cfg.optim.kl_coef > 0 else None
            self.rollout_policies = self._rollout_engines()
            self.verifier = MathVerifier()
            self.step_count = 0
            self.optimizer_steps = {role: 0 for role in ROLES}
            self._stop_requested = False
            self._stop_signal = None
            self._updating = False
            if resume:
                self._resume()
        except BaseException:
            if getattr(self, "verifier", None) is not None:
                self.verifier.close()
            torch.set_num_threads(self._threads_before)
            self._release(remove_dir=created)
            raise

    def _check_device(self) -> None:
        d = self.config.model.device
        try:
            dev = torch.device(d)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"model.device={d!r} is invalid: {e}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build, but no GPU is visible"
            raise ConfigError(f"model.device={d!r} is invalid here: this torch ({torch.__version__}) is {build}; "
                              "allowed: cpu (set model.device=cpu)")

    def _release(self, remove_dir: bool = False) -> None:
        """Free the run directory's lock (and remove a directory this trainer created and left empty)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if remove_dir:
                with contextlib.suppress(OSError):
                    (self.out / ".lock").unlink()
                    self.out.rmdir()

    # ------------------------------------------------------------------ the training step

    def step(self) -> dict:
        """One training step (see the module docstring); returns its metrics row."""
        cfg, r, s = self.config, self.config.rollout, self.step_count
        t = {"start": time.perf_counter()}
        seed = step_seed(cfg.seed, s, self.dist.rank)

        # 1. problems: a global draw from (seed, step), then this rank's shard
        order = np.random.default_rng([cfg.seed, s]).choice(len(self.problems), r.problems_per_step,
                                                             replace=len(self.problems) < r.problems_per_step)
        problems = [self.problems[i] for i in order][self.dist.rank::self.dist.world]

        # 2. collect: both roles sampled; counterfactuals as the credit method requires
        groups = collect_groups(
            problems, self.rollout_policies, group_size=r.group_size, needs=self.credit.requires,
            verifier=self.verifier, solo_samples=r.solo_samples, answers_per_thought=r.answers_per_thought,
            seed=seed, temperature=r.temperature, top_p=r.top_p,
            thinker_max_new_tokens=r.thinker_max_new_tokens, solver_max_new_tokens=r.solver_max_new_tokens,
            rating_max_new_tokens=r.rating_max_new_tokens, rating_temperature=r.rating_temperature, env_options={"prompts": prompt_templates(r.prompts)},
        )
        self.last_groups = groups  # this rank's groups of the latest step (for inspection)
        t["collect"] = time.perf_counter()

        # 3. credit over the whole (gathered) batch; this rank keeps its own episodes' rewards
        all_groups, offset = self._gather_outcomes(groups)
        rewards_all = self.credit(all_groups)
        n_local = sum(len(g.episodes) for g in groups)
        rewards = {role: rewards_all[role][offset:offset + n_local] for role in ROLES}
        diag = collaboration_diagnostics(all_groups, rewards_all, estimator=cfg.optim.estimator,
                                         method=self.credit, **self._estimator_params())
        t["credit"] = time.perf_counter()

        # 4-5. advantages and update for the role(s) scheduled this step. A role trains on its
        # units (credit.role_units): the Thinker on each distinct thought once (its reward the
        # mean over the thought's K answers), the Solver on every answer, grouped as the credit
        # method says (by problem, or by thought under `tree`). With K = 1 a unit is an episode.
        episodes = [e for g in groups for e in g.episodes]
        role_metrics = {}
        self._updating = True
        for role in self.roles_to_update(s):
            units = credit_registry.role_units(groups, rewards[role], role, credit_registry.resolve_grouping(self.credit, role))
            prompts = [episodes[k].prompts[role] for k in units.episodes]
            completions = [episodes[k].completions[role] for k in units.episodes]
            lengths = [len(c.token_ids) for c in completions]
            adv = self.estimator(units.rewards, units.index, lengths=lengths, **self._estimator_params())
            role_metrics[role] = self._update(role, prompts, completions, adv)
        self._updating = False
        self._sync_rollout_engines()
        t["update"] = time.perf_counter()
        self.step_count += 1

        # 6. metrics row
        row = self._metrics_row(s, groups, all_groups, rewards_all, diag, role_metrics, t)
        self._log_row(row)
        return row

    def roles_to_update(self, step: int) -> list[str]:
        return scheduled_roles(self.config.schedule, step)

    def _update(self, role: str, prompts, completions, advantages: torch.Tensor) -> dict:
        """``ppo_epochs`` clipped policy-gradient updates of one role on one rollout batch."""
        o = self.config.optim
        policy, wrapped, opt = self.policies[role], self.wrapped[role], self.optimizers[role]
        params = list(policy.parameters())
        old = [torch.tensor(c.logprobs, dtype=torch.float32) for c in completions]
        T = max(len(x) for x in old)
        lengths = [len(getattr(c, "prompt_token_ids", []) or []) + len(c.token_ids) for c in completions]
        batches = micro_batches(lengths, o.micro_batch_tokens)
        ref = self._reference_logprobs(role, prompts, completions, batches) if self.reference else None
        n_tok, n_seq = sum(len(x) for x in old), sum(1 for x in old if len(x))  # B': non-empty rows
        sums: dict[str, float] = {}
        policy.train()
        with _training_view(policy, wrapped):
            for _ in range(o.ppo_epochs):
                for group in opt.param_groups:  # linear warm-up, then constant
                    group["lr"] = o.lr * min(1.0, (self.optimizer_steps[role] + 1) / (o.warmup_steps + 1))
                opt.zero_grad(set_to_none=True)
                for k, idx in enumerate(batches):
                    with self.dist.no_sync(wrapped) if k < len(batches) - 1 else contextlib.nullcontext():
                        logp = policy.logprobs([prompts[i] for i in idx], [completions[i] for i in idx])
                        cur, mask = _pad(logp, T)
                        loss, m = self.loss_fn(
                            cur, _pad([old[i] for i in idx], T)[0], advantages[idx], mask,
                            clip_low=o.clip_low, clip_high=o.clip_high, dual_clip=o.dual_clip, agg=o.agg,
                            ref_logp=None if ref is None else _pad([ref[i] for i in idx], T)[0],
                            kl_coef=o.kl_coef, kl_type=o.kl_type, max_len=T,
                        )
                        # each micro-batch's share of the whole batch's aggregate
                        share = losses.micro_batch_share(o.agg, mask, n_tok, n_seq)
                        (loss * share).backward()
                    for key, v in m.items():
                        sums[key] = sums.get(key, 0.0) + v * share / o.ppo_epochs
                norm = torch.nn.utils.clip_grad_norm_(params, o.grad_clip if o.grad_clip > 0 else float("inf"))
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(norm) / o.ppo_epochs
                opt.step()
                self.optimizer_steps[role] += 1
        policy.eval()
        sums["lr"] = opt.param_groups[0]["lr"]
        sums["micro_batches"] = len(batches)
        sums["advantage_mean"] = float(advantages.float().mean())
        sums["advantage_abs_mean"] = float(advantages.float().abs().mean())
        return sums

    # ------------------------------------------------------------------ the loop

    def train(self) -> list[dict]:
        """Run until ``config.steps``; returns the metrics rows of this call.

        Ctrl-C or SIGTERM (what ``timeout``, ``kill`` and job schedulers send): the current step
        finishes, a checkpoint is written, then :class:`TrainingInterrupted` (a
        ``KeyboardInterrupt``) is raised; the CLI exits with ``128 + signal`` (130, 143). A second
        signal aborts at once; the last checkpoint stays, and the state is saved too if no update
        was under way.
        """
        cfg = self.config
        rows = []
        bar = self._progress()
        previous = self._install_signals()
        try:
            while self.step_count < cfg.steps:
                row = self.step()
                rows.append(row)
                if bar is not None:
                    bar.update(row)
                if self._stop_requested:
                    self.save()
                    raise TrainingInterrupted(self._stop_signal or signal.SIGINT)
                if cfg.eval_every and (self.step_count % cfg.eval_every == 0 or self.step_count == cfg.steps):
                    self._log_eval(self.evaluate(cfg.eval_data))
                if self.step_count % cfg.save_every == 0 or self.step_count == cfg.steps or self._stop_requested:
                    self.save()
                if self._stop_requested:
                    raise TrainingInterrupted(self._stop_signal or signal.SIGINT)
        except KeyboardInterrupt as e:
            if not self._stop_requested and not self._updating:
                self.save()
            if self.log:
                what = signal.Signals(getattr(e, "signum", signal.SIGINT)).name
                self.log(f"{what}: stopped at step {self.step_count}; checkpoint in {self.out / 'checkpoint'} "
                         f"at step {self._saved_step()} (continue with --resume)")
            if not isinstance(e, TrainingInterrupted):
                raise TrainingInterrupted(self._stop_signal or signal.SIGINT) from None
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if bar is not None:
                bar.close()
        return rows

    def _saved_step(self):
        try:
            return json.loads((self.out / "checkpoint" / "meta.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            return "none"

    def _install_signals(self) -> dict:
        """SIGINT and SIGTERM: the first asks for a stop after this step, the second aborts."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_requested:
                raise TrainingInterrupted(signum)
            self._stop_requested = True
            self._stop_signal = signum
            if self.log:
                name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                self.log(f"\n{name}: finishing this step, then saving a checkpoint (send it again to abort)")

        return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(self) -> None:
        """Ask :meth:`train` to stop after the current step (as Ctrl-C does)."""
        self._stop_requested = True

    def close(self) -> None:
        """End the verifier's workers and rollout engines, and free the run directory's lock."""
        torch.set_num_threads(self._threads_before)
        self.verifier.close()
        self._release()
        for p in self.rollout_policies.values():
            if hasattr(p, "close") and not isinstance(p, TransformersPolicy):
                p.close()
        if self._tb:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ checkpoints

    def role_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """What the checkpoint stores per role: the full state dict (``separate``; ``shared``
        stores it once, under the Thinker), or the role's adapter (``lora``)."""
        sharing = self.config.model.sharing
        if sharing == "lora":
            return {role: {n: p.detach() for n, p in self.policies[role].named_parameters()} for role in ROLES}
        if sharing == "shared":
            return {THINKER: self.policies[THINKER].model.state_dict()}
        return {role: self.policies[role].model.state_dict() for role in ROLES}

    def save(self) -> Path | None:
        """Write ``out/checkpoint`` atomically (rank 0; the others wait)."""
        path = None
        if self.dist.main:
            path = save_checkpoint(
                self.out / "checkpoint", step=self.step_count, weights=self.role_weights(),
                optimizers={role: opt.state_dict() for role, opt in self.optimizers.items()},
                credit_state=self.credit.state_dict(), config=self.config.to_dict(), rng=capture_rng(),
                extra={"optimizer_steps": self.optimizer_steps},
            )
        self.dist.barrier()
        return path

    def _resume(self) -> None:
        ck = load_checkpoint(self.out / "checkpoint")
        mine = self.config.to_dict()
        theirs = {**mine, **{k: v for k, v in ck["config"].items()}}
        diff = [d for d in config_diff(ck["config"], mine) if d.split(":")[0] not in RESUMABLE_CHANGES]
        if diff or set(ck["config"]) != set(theirs):
            raise ResumeError(
                f"cannot resume {self.out}: the checkpoint was written with a different configuration "
                f"(only {', '.join(RESUMABLE_CHANGES)} may change):\n  " + "\n  ".join(diff)
            )
        sharing = self.config.model.sharing
        for role, sd in ck["weights"].items():
            model = self.policies[role].model
            if sharing == "lora":
                params = dict(self.policies[role].named_parameters())
                with torch.no_grad():
                    for n, v in sd.items():
                        params[n].copy_(v)
            else:
                model.load_state_dict(sd)
        for role, sd in ck["optimizers"].items():
            self.optimizers[role].load_state_dict(sd)
        self.credit.load_state_dict(ck["credit_state"])
        restore_rng(ck["rng"])
        self.step_count = int(ck["step"])
        self.optimizer_steps = {r: int(v) for r, v in ck["extra"].get("optimizer_steps", {}).items()} or self.optimizer_steps
        if self.writer and self.dist.main:
            if self.config.steps < self.step_count:
                raise ResumeError(f"cannot resume {self.out} with steps={self.config.steps}: its checkpoint is already at "
                                  f"step {self.step_count}; pass a larger --steps (or none, to keep {ck['config'].get('steps')})")
            # metrics.jsonl (and eval.jsonl) agree with the checkpoint: rows past it and a torn last line are set aside
            for name in (METRICS, EVALS):
                cut = reconcile_metrics(self.out / name, self.step_count)
                if cut["cut_to"] and self.log:
                    self.log(f"{name}: {cut['cut']} line(s) past the checkpoint's step {self.step_count} or torn moved "
                             f"to {cut['cut_to']}")
        self._sync_rollout_engines()
        if self.log:
            self.log(f"resumed from {ck['path']} at step {self.step_count}")

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, data: str | list, *, samples: int | None = None, temperature: float | None = None) -> dict:
        """Accuracy with and without the Thinker on ``data`` (see :func:`algorithms.evaluate.evaluate`)."""
        from .evaluate import evaluate

        cfg = self.config
        if isinstance(data, str) and data == cfg.eval_data:
            data = self.eval_problems  # loaded (and checked) once, at construction
        return evaluate(self.rollout_policies, data, samples=samples or cfg.eval_samples,
                        temperature=cfg.eval_temperature if temperature is None else temperature,
                        seed=cfg.seed, verifier=self.verifier, rollout=cfg.rollout)

    def _log_eval(self, result: dict) -> None:
        if self.dist.main:
            append_row(self.out / EVALS, json.dumps({"step": self.step_count, **result}, default=json_default))
            if self.log:
                self.log(f"eval @ step {self.step_count}: joint {result['joint_accuracy']:.1%}, "
                         f"Thinker removed {result['solo_accuracy']:.1%}")

    # ------------------------------------------------------------------ construction helpers

    def _model_source(self, name: str) -> str:
        ws = self.config.warm_start
        if not ws.enabled:
            return name
        from .warmstart import warm_start

        if self.dist.main:  # rank 0 trains (or finds) the cached warm start; the others wait
            warm_start(ws, model=name, prompts=self.config.rollout.prompts, log=self.log)
        self.dist.barrier()
        return str(warm_start(ws, model=name, prompts=self.config.rollout.prompts, log=None))

    def _load(self, name: str, **kw) -> tuple:
        m = self.config.model
        model, tok = load_model(self._model_source(name), seed=self.config.seed, dtype=m.dtype, device=m.device)
        return model, tok

    def _build_policies(self) -> dict[str, TransformersPolicy]:
        m, seed, r = self.config.model, self.config.seed, self.config.rollout
        # prompts are cut (from the left of the user message) to max_prompt_tokens
        context = r.max_prompt_tokens + max(r.thinker_max_new_tokens, r.solver_max_new_tokens, r.rating_max_new_tokens)
        kw = dict(seed=seed, gradient_checkpointing=m.gradient_checkpointing)
        policies = self._make_policies(m, kw)
        for p in policies.values():
            p.max_context = min(p.max_context, context)
        return policies

    def _make_policies(self, m, kw) -> dict[str, TransformersPolicy]:
        if m.sharing == "shared":
            model, tok = self._load(m.name)
            p = TransformersPolicy(model, tok, name=m.name, **kw)
            return {THINKER: p, SOLVER: p}
        if m.sharing == "lora":
            import peft

            from agents.transformers_policy import _lora_config

            model, tok = self._load(m.name)
            lcfg = _lora_config({"r": m.lora_rank, "lora_alpha": m.lora_alpha})
            torch.manual_seed(self.config.seed)  # adapter initialisation
            pm = peft.get_peft_model(model, lcfg, adapter_name=THINKER)
            pm.add_adapter(SOLVER, lcfg)
            for n, p in pm.named_parameters():
                p.requires_grad_(".lora_" in n)
            return {role: _RolePolicy(pm, tok, role, name=f"{m.name}+lora:{role}", **kw) for role in ROLES}
        thinker = TransformersPolicy(*self._load(m.name), name=m.name, **kw)
        solver_name = m.solver_name or m.name
        solver = TransformersPolicy(*self._load(solver_name), name=solver_name, **kw)
        return {THINKER: thinker, SOLVER: solver}

    def _build_reference(self) -> dict:
        ref = {}
        for role in ROLES:
            frozen = copy.deepcopy(self.policies[role])
            for p in frozen.model.parameters():
                p.requires_grad_(False)
            ref[role] = frozen
        return ref

    def _reference_logprobs(self, role, prompts, completions, batches) -> list[torch.Tensor]:
        out: list[Any] = [None] * len(prompts)
        with torch.no_grad():
            for idx in batches:
                for i, lp in zip(idx, self.reference[role].logprobs([prompts[i] for i in idx], [completions[i] for i in idx])):
                    out[i] = lp.float()
        return out

    def _rollout_engines(self) -> dict:
        if self.config.rollout.engine != "vllm":
            return dict(self.policies)
        from agents.vllm_policy import VLLMPolicy

        # one engine per distinct trainable policy (one for both roles under `shared`), holding
        # its current weights; rollout.vllm adds vllm.LLM arguments (token budget, memory, ...)
        engines = {}
        for role in ROLES:
            src = self.policies[role]
            same = [r for r in engines if self.policies[r] is src]
            engines[role] = engines[same[0]] if same else VLLMPolicy.from_policy(
                src, seed=self.config.seed, **dict(self.config.rollout.vllm))
        self._engine_synced_at = {role: 0 for role in ROLES}  # optimizer steps the engine's weights reflect
        return engines

    def _sync_rollout_engines(self) -> None:
        """Load the trainable weights into each rollout engine whose policy changed since its last
        sync (an optimizer step, or a resume), once per engine."""
        if self.config.rollout.engine != "vllm":
            return
        done = set()
        for role in ROLES:
            engine = self.rollout_policies[role]
            if id(engine) in done:
                continue
            sharers = [r for r in ROLES if self.rollout_policies[r] is engine]
            if any(self.optimizer_steps[r] != self._engine_synced_at[r] for r in sharers):
                engine.sync_weights(self.policies[role])
            for r in sharers:
                self._engine_synced_at[r] = self.optimizer_steps[r]
            done.add(id(engine))

    def _estimator_params(self) -> dict:
        return {"scale": self.config.optim.scale} if self.config.optim.estimator == "grpo" else {}

    def _gather_outcomes(self, groups) -> tuple[list, int]:
        """Every rank's groups in rank order (so the credit method sees the whole batch, and its
        state stays identical on every rank), and where this rank's episodes start."""
        if self.dist.world == 1:
            return list(groups), 0
        everyone = self.dist.gather(list(groups))
        offset = sum(len(g.episodes) for ranks in everyone[: self.dist.rank] for g in ranks)
        return [g for ranks in everyone for g in ranks], offset

    # ------------------------------------------------------------------ metrics

    def _metrics_row(self, step, groups, all_groups, rewards, diag, role_metrics, t) -> dict:
        row: dict[str, Any] = {"step": step + 1, "updated": sorted(role_metrics)}
        for role in ROLES:
            row[f"reward_{role}"] = float(np.mean(rewards[role]))
        row.update({k: v for k, v in diag.items()})
        row["accuracy_solver_0"] = diag["joint_accuracy"]
        if "no_solver_accuracy" in diag:
            row["accuracy_thinker_0"] = diag["no_solver_accuracy"]
        row.update({f"credit_{k}": v for k, v in getattr(self.credit, "metrics", {}).items()})
        for role, m in role_metrics.items():
            row.update({f"{k}_{role}": v for k, v in m.items()})
        first = role_metrics.get(sorted(role_metrics)[0]) if role_metrics else {}
        for k in ("loss", "kl", "clip_frac"):
            if k in first:
                row[k] = first[k]
        budget = groups.budget
        row["tokens"] = {phase: budget[phase]["tokens"] for phase in budget if phase != "generate_calls"}
        row["tokens_total"] = sum(row["tokens"].values())
        row["generations"] = {phase: budget[phase]["generations"] for phase in budget if phase != "generate_calls"}
        row["time"] = {"collect": t["collect"] - t["start"], "credit": t["credit"] - t["collect"],
                       "update": t["update"] - t["credit"]}
        row["time_total"] = t["update"] - t["start"]
        return row

    def _log_row(self, row: dict) -> None:
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        append_row(self.out / METRICS, json.dumps(row, default=json_default))  # one write per whole line
        if self.config.tensorboard:
            if self._tb is None:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except Exception:  # tensorboard not installed (said once, at start)
                    self._tb = False
                else:
                    self._tb = SummaryWriter(str(self.out / "tensorboard"))
            if self._tb:
                for k, v in _flatten(row).items():
                    if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                        self._tb.add_scalar(k, v, row["step"])

    def _progress(self):
        """A tqdm bar on a terminal; elsewhere (tee, nohup, a log file) a plain line after the
        first step, then every ``_PROGRESS_EVERY_S`` seconds and at the last step: step, batch
        accuracy, seconds per step and the time left."""
        if not self.dist.main or self.log is None:
            return None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                return _Bar(tqdm(total=self.config.steps, initial=self.step_count, desc="train", unit="step"))
        return _Lines(self.log, self.step_count, self.config.steps)


_PROGRESS_EVERY_S = 10.0


class _Bar:
    def __init__(self, bar) -> None:
        self.bar = bar

    def update(self, row: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(acc=f"{row['joint_accuracy']:.2f}", loss=f"{row.get('loss', 0.0):.3f}")

    def close(self) -> None:
        self.bar.close()


class _Lines:
    """Progress as plain lines (see :meth:`Trainer._progress`)."""

    def __init__(self, log, start: int, total: int) -> None:
        self.log, self.start, self.total = log, start, total
        self.t0 = self.last = time.perf_counter()
        self.done = start

    def update(self, row: dict) -> None:
        self.done = row["step"]
        now = time.perf_counter()
        if self.done - self.start > 1 and now - self.last < _PROGRESS_EVERY_S and self.done < self.total:
            return
        self.last = now
        per = (now - self.t0) / max(self.done - self.start, 1)
        self.log(f"train: step {self.done}/{self.total}, batch accuracy {row['joint_accuracy']:.2f}, "
                 f"loss {row.get('loss', 0.0):.3f}, {per:.2f} s/step, ~{_clock(per * (self.total - self.done))} left")

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _pad(seqs: list[torch.Tensor], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D tensors to (B, T); returns the matrix and its mask."""
    out = torch.zeros(len(seqs), T, dtype=torch.float32)
    mask = torch.zeros(len(seqs), T, dtype=torch.float32)
    rows = []
    for i, s in enumerate(seqs):
        mask[i, : len(s)] = 1
        rows.append(torch.nn.functional.pad(s.float(), (0, T - len(s))))
    return torch.stack(rows) if rows else out, mask


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out
