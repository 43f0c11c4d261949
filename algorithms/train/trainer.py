"""The trainer: one training step, top to bottom (the reference loop of docs/training.md).

``Trainer(config).train()`` repeats :meth:`Trainer.step`, which reads in order:

1. **problems** — ``rollout.problems_per_step`` problems drawn with a generator seeded by
   ``(seed, step)``; under ``torchrun`` or ``accelerate launch`` each rank takes its shard
   ``[rank::world]``;
2. **collect** — :func:`~algorithms.rollout.collect_groups`: both roles sampled, ``group_size``
   joint episodes per problem plus the counterfactuals the credit method requires;
3. **credit** — the credit method turns outcomes into one reward per role and joint episode
   (on every rank over the *whole* batch, gathered, so its state stays identical);
4. **advantages** — per role, the configured estimator over the role's units
   (:func:`~algorithms.credit.role_units`);
5. **update** — the role(s) the schedule picks this step (:func:`.schedule.scheduled_roles`):
   :func:`.update.policy_update`, micro-batched and gradient-accumulated; the rollout engines
   follow the new weights;
6. **metrics** — one JSON row in ``OUT/metrics.jsonl`` (the same keys in every row; mirrored to
   the loggers of ``report_to``), and every ``samples_every`` steps a few episodes as written
   (problem, thought, answer, verdict, credit and advantage per role) in ``OUT/samples.jsonl``.

:meth:`train` adds evaluations every ``eval_every`` steps and a checkpoint every ``save_every``
steps and at the end, atomically, in ``OUT/checkpoint/``; a run that reaches its last step writes
``OUT/summary.json`` and logs its last samples and a before/after table
(:func:`~algorithms.runs.report_run`).

Set-up happens in named phases, each undone if a later one fails: :meth:`_check` (plugins loaded,
configuration validated, the credit method built, device, every data source and model name —
no model loaded and nothing written yet), :meth:`_open_run` (the run directory's lock, then
:func:`~algorithms.runs.check_run_dir`: a directory holding another run is refused unless
resuming, a resume behind its checkpoint is refused),
:meth:`_build` (seeds, models, optimizers, rollout engines, verifier) and :meth:`_resume`.

Exact resume: all randomness of a step is seeded from ``(seed, step, rank)``, and the checkpoint
holds weights, optimizer states, credit state, RNG states and the step, so a run resumed at step
k continues exactly as the uninterrupted run. Ctrl-C or SIGTERM finishes the current step,
writes a checkpoint and exits (a second signal aborts at once, keeping the last checkpoint).

Where the rest lives: models and engines in :mod:`algorithms.team`, the run directory, metrics,
checkpoints and progress in :mod:`algorithms.runs`, the ranks and the model layout (DDP or FSDP2,
``parallel.strategy``) in :mod:`.distributed`, the idle role's placement in :mod:`.idle`, the
update in :mod:`.update`, signals in :mod:`.signals`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thinksolve_env import MathVerifier

from .. import credit as credit_registry
from ..config import ConfigError, TrainerConfig, env_options
from ..credit.base import needs_for
from ..evaluation import collaboration_diagnostics, evaluate
from ..optim import estimators, losses
from ..rollout import collect_groups
from ..runs import (
    EVALS,
    METRICS,
    SAMPLES,
    MetricsLogger,
    ResumeError,
    RunLock,
    capture_rng,
    check_run_dir,
    load_checkpoint,
    open_run_dir,
    reconcile_metrics,
    report_run,
    restore_rng,
    sample_rows,
    save_checkpoint,
    save_sharded_checkpoint,
    training_progress,
    utc_time,
    write_samples,
)
from ..team import (
    PlanUnavailable,
    RolloutEngines,
    build_policies,
    build_reference,
    check_fits,
    model_source,
    restore_team,
    role_weights,
    team_state,
)
from .distributed import Distributed, GatheredGeneration, full_weights
from .idle import IdleRoles
from .preflight import RESUMABLE_CHANGES, check_resume, preflight
from .schedule import scheduled_roles, step_seed
from .signals import StopSignals, TrainingInterrupted
from .update import policy_update

__all__ = ["Trainer", "ResumeError", "TrainingInterrupted", "RESUMABLE_CHANGES"]

#: Where rank 0 writes the weights every rank's vLLM engines start from (removed once they have).
ENGINE_STAGING = ".engine-weights"

_say = functools.partial(print, flush=True)  # progress lines show at once under tee, nohup, a log file


def adamw(params: list[torch.nn.Parameter], *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one kernel over every tensor: on CPU about 4x faster per step
    than the default foreach one, as TRL and verl use it), or the default where the parameters'
    device has none."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class Trainer:
    """Collect → credit → advantages → update per role, with checkpoints and metrics.

    Args:
        config: a :class:`~algorithms.config.TrainerConfig` (its plugins loaded and validated here).
        resume: continue from ``config.out/checkpoint`` (refused if its config differs in any
            field but :data:`RESUMABLE_CHANGES`).
        log: where progress lines go (``None`` silences them).
        writer: whether this trainer writes the run directory (lock, metrics, checkpoints).
    """

    def __init__(self, config: TrainerConfig, *, resume: bool = False, log: Callable[[str], Any] | None = _say,
                 writer: bool = True) -> None:
        self.writer = writer
        self._lock: RunLock | None = None
        self.verifier: MathVerifier | None = None
        self.engines: RolloutEngines | None = None
        self.metrics: MetricsLogger | None = None
        self.summary: dict | None = None  # OUT/summary.json, once train() reaches the last step
        self._threads_before = torch.get_num_threads()
        self._stop = StopSignals(None)
        self._updating = False
        self.config = cfg = copy.deepcopy(config)
        self.out = Path(cfg.out)
        par = cfg.parallel
        self.dist = Distributed(cfg.model.device, par.strategy, offload=par.offload, replicas=par.replicas,
                                find_unused_parameters=cfg.model.sharing == "lora")
        self.log = log if self.dist.main else None
        self._stop.log = self.log
        created = not self.out.exists()
        try:
            self._check()
            self._open_run(resume)
            self._build()
            if resume:
                self._resume()
        except BaseException:
            self._teardown(remove_dir=created)
            raise

    # ------------------------------------------------------------------ set-up phases

    def _check(self) -> None:
        """Everything that can be checked before a model is loaded or a file written: the plugins
        loaded first (their credit methods can then be named), the configuration, the credit
        method built (its parameters' values), the world size, the device, every data source and
        the model names."""
        found = preflight(self.config, world=self.dist.world, loggers=self.writer and self.dist.main)
        self.credit, self.problems, self.eval_problems = found.credit, found.problems, found.eval_problems
        self._check_device()

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
        self.plan = None
        if dev.type == "cuda" and self.config.parallel.memory_check:  # before anything is loaded on a GPU
            total = torch.cuda.get_device_properties(self.dist.local_rank).total_memory
            try:
                self.plan = check_fits(self.config, self.dist.world, total)
            except PlanUnavailable as e:
                if self.log:
                    self.log(f"memory plan skipped: {e}")

    def _open_run(self, resume: bool) -> None:
        """One writer per run directory: take its lock, refuse a directory that holds another run
        (unless resuming it), set aside metrics rows of an earlier run without a checkpoint."""
        if not (self.writer and self.dist.main):
            return
        try:
            self._lock = open_run_dir(self.out)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        check_run_dir(self.out, resume=resume, steps=self.config.steps, lock=self._lock)
        if not resume:
            for name in (METRICS, EVALS, SAMPLES):
                moved = reconcile_metrics(self.out / name, 0)["cut_to"]
                if moved and self.log:
                    self.log(f"{self.out / name} held rows of an earlier run without a checkpoint; moved to {moved}")
        names, explicit = self.config.loggers()
        self.metrics = MetricsLogger(self.out, report_to=names if explicit else None, tensorboard=bool(names),
                                     log=self.log, config=self.config.to_dict())

    def _build(self) -> None:
        """Seeds, the estimator and loss, the models (one trainable policy per role), their
        optimizers, the KL reference, the rollout engines and the verifier."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.estimator = estimators.get(cfg.optim.estimator)
        self.loss_fn = losses.get(cfg.optim.loss)
        sharding = self.dist.sharding
        # Sharded models load into CPU memory: fully_shard moves each layer to the rank's GPU as it
        # shards it, so no GPU ever holds a whole model at start-up.
        where = dataclasses.replace(cfg.model, device="cpu") if sharding else cfg.model
        self.policies = build_policies(where, cfg.rollout, seed=cfg.seed, source=self._model_source)
        # Frozen reference copies only with a KL term. With several ranks, vLLM engines start from
        # whole weights rank 0 writes now, before sharding; later syncs stream them from the shards.
        self.reference = build_reference(self.policies) if cfg.optim.kl_coef > 0 else None
        folders = self._stage_engine_weights() if cfg.rollout.engine == "vllm" and self.dist.world > 1 else None
        # One trainable policy per role (the same object for both under `shared` and `lora`), its
        # model wrapped for updates (DDP; FSDP shards it in place), its AdamW over the (sharded) parameters.
        compute = getattr(torch, cfg.model.dtype)
        wrapped_by_id: dict[int, Any] = {}
        self.wrapped = {}
        for role in self.roles:
            model = self.policies[role].model
            if id(model) not in wrapped_by_id:
                wrapped_by_id[id(model)] = self.dist.wrap(model, compute)
            self.wrapped[role] = wrapped_by_id[id(model)]
        if sharding and self.reference:
            for p in self.reference.values():
                self.dist.shard(p.model, compute)
        if sharding and cfg.parallel.offload:  # shards wait in CPU memory; forward passes run on the GPU
            for p in [*self.policies.values(), *(self.reference or {}).values()]:
                p.compute_device = self.dist.compute_device
        # the engines come once the training state is in place (vLLM sizes its cache by what is free)
        self.engines = RolloutEngines(self.policies, cfg.rollout.engine, seed=cfg.seed, vllm_args=self._vllm_args(),
                                      view=GatheredGeneration if sharding else None,
                                      weights=full_weights if sharding else None, folders=folders)
        if folders:  # every rank's engines have read them
            self.dist.barrier()
            if self.dist.main:
                shutil.rmtree(self.out / ENGINE_STAGING, ignore_errors=True)
        self.optimizers = {role: adamw(list(self.policies[role].parameters()), lr=cfg.optim.lr,
                                       weight_decay=cfg.optim.weight_decay) for role in self.roles}
        # the idle role's optimizer state (and, when vLLM samples its rollouts, its weights) off the GPU
        self.idle = IdleRoles(self.optimizers,
                              {r: self.policies[r].model for r in self.roles} if cfg.rollout.engine == "vllm" else {},
                              cfg.model.device, self.roles_to_update,
                              enabled=cfg.parallel.offload_idle and cfg.schedule.mode == "alternate"
                              and not (self.dist.sharding and cfg.parallel.offload))  # (offloaded shards live on CPU)
        self.verifier = MathVerifier()
        self.step_count = 0
        self.optimizer_steps = dict.fromkeys(self.roles, 0)

    def _stage_engine_weights(self) -> dict[str, str]:
        """Several ranks, vLLM engines: rank 0 writes each distinct policy's starting weights to
        ``OUT/.engine-weights/<role>`` (transformers saves on rank 0 only), the others wait; every
        rank's engines start from there (a folder in the run directory, which multi-node runs
        share, as they share checkpoints)."""
        root = self.out / ENGINE_STAGING
        first = {}
        for role in self.roles:
            first.setdefault(id(self.policies[role]), role)
        if self.dist.main:
            shutil.rmtree(root, ignore_errors=True)
            for role in set(first.values()):
                self.policies[role].save_pretrained(root / role)
        self.dist.barrier()
        return {role: str(root / first[id(self.policies[role])]) for role in self.roles}

    def _vllm_args(self) -> dict:
        """The vLLM engines' arguments: the models' dtype, a context as long as the rollout's
        (prompt plus the longest answer), on CUDA each engine's share of the GPU from the memory
        plan; ``rollout.vllm`` overrides any of them."""
        # (the policies' contexts were cut to the rollout's budgets by build_policies)
        args: dict[str, Any] = {"dtype": self.config.model.dtype,
                                "max_model_len": min(p.max_context for p in self.policies.values())}
        if self.plan is not None and "vllm_gpu_memory_utilization" in self.plan:
            args["gpu_memory_utilization"] = self.plan["vllm_gpu_memory_utilization"]
        return {**args, **self.config.rollout.vllm}

    def _model_source(self, name: str) -> str:
        """The warm-started directory of ``name`` (rank 0 trains or finds it; the others wait)."""
        if self.config.warm_start.enabled and self.dist.main:
            model_source(self.config, name, log=self.log)
        self.dist.barrier()
        return model_source(self.config, name, log=None)

    def _teardown(self, remove_dir: bool = False) -> None:
        """Undo the set-up: verifier workers, rollout engines, threads, the lock (and a directory
        this trainer created and left empty)."""
        torch.set_num_threads(self._threads_before)
        if self.verifier is not None:
            self.verifier.close()
        if self.engines is not None:
            self.engines.close()
        if self.metrics is not None:
            self.metrics.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if remove_dir:
                try:  # the directory goes only if the lock file was all it held
                    (self.out / ".lock").unlink()
                    self.out.rmdir()
                except OSError:
                    pass

    @property
    def rollout_policies(self) -> dict[str, Any]:
        """The policy each role samples rollouts from (the trainable one, or its vLLM engine)."""
        return self.engines.policies

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
            problems, self.rollout_policies, group_size=r.group_size, needs=self.needs,
            verifier=self.verifier, solo_samples=r.solo_samples, answers_per_thought=r.answers_per_thought,
            sampling=r.sampling(seed), env_options=env_options(r),
            rating_stop=getattr(self.credit, "rating_stop", None),
        )
        self.last_groups = groups  # this rank's groups of the latest step (for inspection)
        t["collect"] = time.perf_counter()

        # 3. credit over the whole (gathered) batch; this rank keeps its own episodes' rewards
        all_groups, offset = self._gather_outcomes(groups)
        rewards_all = self.credit(all_groups)
        n_local = sum(len(g.episodes) for g in groups)
        rewards = {role: rewards_all[role][offset:offset + n_local] for role in self.roles}
        diag = collaboration_diagnostics(all_groups, rewards_all, estimator=cfg.optim.estimator,
                                         method=self.credit, **self._estimator_params())
        t["credit"] = time.perf_counter()

        # 4-5. advantages and update for the role(s) scheduled this step. A role trains on its
        # units (credit.role_units): the Thinker on each distinct thought once (its reward the
        # mean over the thought's K answers), the Solver on every answer, grouped as the credit
        # method says (by problem, or by thought under `tree`). With K = 1 a unit is an episode.
        episodes = [e for g in groups for e in g.episodes]
        role_metrics, advantages = {}, {}
        sampled = self._samples_due(s + 1)
        self._updating = True
        self.idle.wake(self.roles_to_update(s))
        for role in self.roles_to_update(s):
            units, prompts, completions, adv = self._advantages(role, groups, episodes, rewards[role])
            advantages[role] = units, adv
            role_metrics[role] = self.update(role, prompts, completions, adv)
        self._updating = False
        self.engines.sync(self.optimizer_steps)
        self.idle.settle(s + 1)
        t["update"] = time.perf_counter()
        self.step_count += 1

        # 6. metrics row (and, every samples_every steps, sample episodes in OUT/samples.jsonl)
        row = self._metrics_row(s, groups, rewards_all, diag, role_metrics, t)
        if self.metrics is not None:
            self.metrics.write(row)
            if sampled:
                self._write_samples(s + 1, groups, episodes, rewards, advantages, row)
        return row

    def _advantages(self, role: str, groups: Any, episodes: list, rewards: Any) -> tuple[Any, list, list, torch.Tensor]:
        """``role``'s training units (:func:`~algorithms.credit.role_units`), their prompts and
        completions, and their advantages under the configured estimator."""
        units = credit_registry.role_units(groups, rewards, role, credit_registry.resolve_grouping(self.credit, role))
        prompts = [episodes[k].prompts[role] for k in units.episodes]
        completions = [episodes[k].completions[role] for k in units.episodes]
        lengths = [len(c.token_ids) for c in completions]
        adv = self.estimator(units.rewards, units.index, lengths=lengths, **self._estimator_params())
        return units, prompts, completions, adv

    def _samples_due(self, step: int) -> bool:
        """Whether step ``step`` (1-based) writes samples: the first, every ``samples_every``-th and the last."""
        every = self.config.samples_every
        return bool(every) and self.metrics is not None and (step == 1 or step % every == 0 or step == self.config.steps)

    def _write_samples(self, step: int, groups: Any, episodes: list, rewards: dict, advantages: dict, row: dict) -> None:
        """Append the step's sample episodes to ``OUT/samples.jsonl`` (rank 0's shard of the batch):
        each role's advantage per joint episode, computed here for a role the step did not update."""
        per_episode = {}
        for role in self.roles:
            if role in advantages:
                units, adv = advantages[role]
            else:
                units, _, _, adv = self._advantages(role, groups, episodes, rewards[role])
            unit_of = np.searchsorted(np.asarray(units.episodes), np.arange(len(episodes)), side="right") - 1
            # (float32 advantages written with their 7 significant digits: 0.55, not 0.550000011920929)
            per_episode[role] = [float(f"{v:.7g}") for v in adv.detach().float().cpu().numpy()[unit_of].tolist()]
        write_samples(self.out, sample_rows(step, groups, rewards, per_episode, n=self.config.samples_per_write,
                                            updated=row["updated"], timestamp=row["timestamp"], roles=self.roles))

    def _budget(self, role: str) -> int:
        """The role's generation budget (:meth:`~algorithms.config.RolloutConfig.max_new_tokens`):
        the L of the Dr. GRPO aggregations (fixed, as in TRL and verl)."""
        return self.config.rollout.max_new_tokens(role)

    def update(self, role: str, prompts: list, completions: list, advantages: torch.Tensor) -> dict[str, float]:
        """Update ``role`` on one rollout batch (:func:`~algorithms.train.update.policy_update`:
        ``ppo_epochs`` micro-batched optimizer steps); returns its metrics."""
        wrapped = self.wrapped[role]
        m = policy_update(self.policies[role], self.optimizers[role], prompts, completions, advantages, self.config.optim,
                          optimizer_step=self.optimizer_steps[role], loss_fn=self.loss_fn,
                          reference=self.reference[role] if self.reference else None, wrapped=wrapped,
                          no_sync=lambda: self.dist.no_sync(wrapped),
                          equalize=self.dist.max if self.dist.sharding else None, max_len=self._budget(role))
        self.optimizer_steps[role] += int(m.pop("optimizer_steps"))
        return m

    def roles_to_update(self, step: int) -> list[str]:
        """The roles the schedule updates at ``step`` (0-based)."""
        return scheduled_roles(self.config.schedule, step, self.roles)

    @property
    def needs(self) -> frozenset[str]:
        """The counterfactuals a step collects: the credit method's ``requires`` (for a chain of
        more roles what it needs for that chain, :func:`algorithms.credit.needs_for`)."""
        if len(self.roles) == 2:
            return self.credit.requires
        return needs_for(self.credit, self.roles)

    @property
    def roles(self) -> tuple[str, ...]:
        """The team's roles in chain order (``rollout.roles``)."""
        return tuple(self.config.rollout.roles)

    def _estimator_params(self) -> dict:
        return {"scale": self.config.optim.scale} if self.config.optim.estimator == "grpo" else {}

    def _gather_outcomes(self, groups: list) -> tuple[list, int]:
        """Every rank's groups in rank order (so the credit method sees the whole batch, and its
        state stays identical on every rank), and where this rank's episodes start."""
        if self.dist.world == 1:
            return list(groups), 0
        everyone = self.dist.gather(list(groups))
        offset = sum(len(g.episodes) for ranks in everyone[: self.dist.rank] for g in ranks)
        return [g for ranks in everyone for g in ranks], offset

    def _metrics_row(self, step: int, groups: Any, rewards: dict, diag: dict, role_metrics: dict, t: dict) -> dict:
        row: dict[str, Any] = {"step": step + 1, "updated": sorted(role_metrics)}
        roles = self.roles
        for role in roles:
            row[f"reward_{role}"] = float(np.mean(rewards[role]))
        row.update(diag)
        # the accuracy of the text each role hands on: the last role's answer (the team's), and the
        # text before it verified on its own (the last role removed) when that was collected
        row[f"accuracy_{roles[-1]}"] = diag["joint_accuracy"]
        if "no_solver_accuracy" in diag:
            row[f"accuracy_{roles[-2]}"] = diag["no_solver_accuracy"]
        row.update({f"credit_{k}": v for k, v in getattr(self.credit, "metrics", {}).items()})
        # every role's update metrics in every row (null for a role the step did not update), so
        # that all rows of a run have the same keys; the updated role(s) name them
        keys = list(dict.fromkeys(k for m in role_metrics.values() for k in m))
        for role in roles:
            row.update({f"{k}_{role}": role_metrics.get(role, {}).get(k) for k in keys})
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
        row["timestamp"] = time.time()  # when the step ended (unix seconds)
        return row

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
        bar = training_progress(self.log if self.dist.main else None, self.step_count, cfg.steps)
        stop = self._stop
        try:
            with stop:
                while self.step_count < cfg.steps:
                    row = self.step()
                    rows.append(row)
                    if bar is not None:
                        bar.update(row)
                    # every rank takes the same branch (a signal may reach the ranks a step apart)
                    if self.dist.any(stop.requested):
                        self.save()
                        raise TrainingInterrupted(stop.signum or signal.SIGINT)
                    if cfg.eval_every and (self.step_count % cfg.eval_every == 0 or self.step_count == cfg.steps):
                        self._log_eval(self.evaluate(cfg.eval_data))
                    if self.step_count % cfg.save_every == 0 or self.step_count == cfg.steps or stop.requested:
                        self.save()
                    if stop.requested:
                        raise TrainingInterrupted(stop.signum or signal.SIGINT)
        except KeyboardInterrupt as e:
            # (an abort on one rank of several cannot save: the others are not there to write their shards)
            if not isinstance(e, TrainingInterrupted) and not stop.requested and not self._updating and self.dist.world == 1:
                self.save()
            signum = getattr(e, "signum", None) or stop.signum or signal.SIGINT
            if self.log:
                self.log(f"{signal.Signals(signum).name}: stopped at step {self.step_count}; checkpoint in "
                         f"{self.out / 'checkpoint'} at step {self._saved_step()} (continue with --resume)")
            if not isinstance(e, TrainingInterrupted):
                raise TrainingInterrupted(signum) from None
            raise
        finally:
            if bar is not None:
                bar.close()
        if self.metrics is not None and self.step_count >= cfg.steps:
            self.summary = report_run(self.out, self.log)  # OUT/summary.json; the last samples and the table on the log
        return rows

    def request_stop(self) -> None:
        """Ask :meth:`train` to stop after the current step (as Ctrl-C does)."""
        self._stop.request()

    def _saved_step(self) -> int | str:
        try:
            return json.loads((self.out / "checkpoint" / "meta.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            return "none"

    def close(self) -> None:
        """End the verifier's workers and rollout engines, and free the run directory's lock."""
        self._teardown()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, data: str | list, *, samples: int | None = None, temperature: float | None = None) -> dict:
        """Accuracy with and without the Thinker on ``data`` (a team of more than two roles: with
        and without each role; see :func:`algorithms.evaluate`),
        verified by the trainer's own verifier (its worker pool, started once per run), with the
        run's seed and rollout settings; the result also names its ``data`` (the source, or
        ``None`` for a problem list) and ``sampling["engine"]``."""
        cfg = self.config
        name = data if isinstance(data, str) else None
        if isinstance(data, str) and data == cfg.eval_data:
            data = self.eval_problems  # loaded (and checked) once, at construction
        result = evaluate(self.rollout_policies, data, samples=samples or cfg.eval_samples,
                          temperature=cfg.eval_temperature if temperature is None else temperature,
                          seed=cfg.seed, verifier=self.verifier, rollout=cfg.rollout)
        result["data"] = name
        result["sampling"]["engine"] = cfg.rollout.engine
        return result

    def _log_eval(self, result: dict) -> None:
        """Append the evaluation to ``OUT/eval.jsonl``: the step, the time, the removal mode and the
        whole result (accuracies, paired intervals, per-problem values with problem ids, seed,
        sampling settings, data, tokens, seconds): the fields of a ``thinksolve eval`` record."""
        if self.metrics is not None:
            self.metrics.write({"step": self.step_count, "time": utc_time(),
                                "remove": None, **result}, EVALS)
            if self.log and "removed" in result:  # a team of more than two roles
                self.log(f"eval @ step {self.step_count}: joint {result['joint_accuracy']:.1%}, "
                         + ", ".join(f"without {r} {v:.1%}" for r, v in result["removed"].items()))
            elif self.log:
                self.log(f"eval @ step {self.step_count}: joint {result['joint_accuracy']:.1%}, "
                         f"Thinker removed {result['solo_accuracy']:.1%}")

    # ------------------------------------------------------------------ checkpoints

    def role_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """What the checkpoint stores per role (see :func:`algorithms.team.role_weights`); this
        rank's DTensor shards when the models are sharded (``.full_tensor()`` gathers one)."""
        return role_weights(self.policies, self.config.model.sharing)

    def save(self) -> Path | None:
        """Write ``out/checkpoint`` atomically: rank 0 alone (the others wait), or every rank its
        shards when the models are sharded."""
        path = None
        if self.dist.sharding:
            state = team_state(self.policies, self.optimizers, self.config.model.sharing)
            return save_sharded_checkpoint(
                self.out / "checkpoint", step=self.step_count, state=state, roles=list(state["weights"]),
                credit_state=self.credit.state_dict(), config=self.config.to_dict(), rng=capture_rng(),
                extra={"optimizer_steps": self.optimizer_steps})
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
        """Load ``out/checkpoint`` (refused if it was written with a different configuration)."""
        ck = load_checkpoint(self.out / "checkpoint")
        check_resume(self.out, ck["config"], self.config)
        restore_team(self.policies, self.optimizers, self.config.model.sharing, ck)
        self.credit.load_state_dict(ck["credit_state"])
        restore_rng(ck["rng"])
        self.step_count = int(ck["step"])
        self.optimizer_steps = ({r: int(v) for r, v in ck["extra"].get("optimizer_steps", {}).items()}
                                or self.optimizer_steps)
        if self.writer and self.dist.main:  # (a target behind the checkpoint was refused by _open_run)
            # metrics.jsonl (and eval.jsonl) agree with the checkpoint: rows past it and a torn last line are set aside
            for name in (METRICS, EVALS, SAMPLES):
                cut = reconcile_metrics(self.out / name, self.step_count, unique=name != SAMPLES)
                if cut["cut_to"] and self.log:
                    self.log(f"{name}: {cut['cut']} line(s) past the checkpoint's step {self.step_count} or torn moved "
                             f"to {cut['cut_to']}")
        self.engines.sync(self.optimizer_steps)
        self.idle.settle(self.step_count)
        if self.log:
            self.log(f"resumed from {ck['path']} at step {self.step_count}")

