"""Loading a trained team back: from a run directory's checkpoint, or from model names.

:func:`load_team` returns a :class:`Team`, which unpacks as ``policies, rollout`` and also knows
how the run sampled its rollouts: ``team.env_options`` (the run's prompt set) and
``team.sampling(seed)`` (its temperature, top-p and token budgets), or all of the trainer's
collection settings at once (``team.collect_options(seed)``, ``team.collect(problems, seed=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agents import TransformersPolicy

from ..config import RolloutConfig, TrainerConfig, env_options
from ..credit.base import needs_for
from ..rollout import Sampling, collect_groups
from ..runs.checkpoint import is_run, load_checkpoint
from .build import build_policies, restore_team
from .sources import check_model_source
from .warmstart import model_source

__all__ = ["load_team", "Team"]


class _TeamFields(NamedTuple):
    policies: dict[str, Any]
    rollout: RolloutConfig | None


class Team(_TeamFields):
    """A loaded team: ``(policies, rollout)`` (so ``policies, rollout = load_team(...)`` unpacks),
    plus ``config``, the run's whole :class:`~algorithms.config.TrainerConfig` (``None`` for a team
    loaded from model names), and what rolls it out as it was trained.

    ``policies`` maps each role to its policy; ``rollout`` is the run's rollout section (budgets,
    temperature, prompt set), ``None`` for model names."""

    config: TrainerConfig | None = None  # (a class default: ``_replace`` builds a copy without __new__)

    def __new__(cls, policies: dict[str, Any], rollout: RolloutConfig | None = None,
                config: TrainerConfig | None = None) -> Team:
        self = super().__new__(cls, policies, rollout)
        self.config = config
        return self

    @property
    def env_options(self) -> dict[str, Any]:
        """The :class:`~thinksolve_env.ThinkSolveEnv` options the run trained with (its prompt set:
        ``{"prompts": prompt_templates(rollout.prompts)}``, and its ``roles`` when the team is not
        the default Thinker and Solver); ``{}`` (the env's default prompts) for a team loaded from
        model names. Pass it as ``collect_groups(..., env_options=...)`` and
        ``ThinkSolveEnv(**team.env_options)``."""
        return env_options(self.rollout) if self.rollout is not None else {}

    def sampling(self, seed: int | None = None, **changes: Any) -> Sampling:
        """The run's sampling settings (temperature, top-p, the roles' token budgets) seeded with
        ``seed``; ``changes`` replace fields (``temperature=0`` for greedy). The defaults of
        :class:`~algorithms.rollout.Sampling` for a team loaded from model names."""
        base = self.rollout.sampling(seed) if self.rollout is not None else Sampling(seed=seed)
        return base.replace(**changes) if changes else base

    def collect_options(self, seed: int | None = None) -> dict[str, Any]:
        """The keyword arguments a training step of the run gives
        :func:`~algorithms.rollout.collect_groups` besides the problems, the policies and the
        verifier: ``group_size``, ``needs`` (the credit method's counterfactuals),
        ``solo_samples``, ``answers_per_thought``, ``sampling``, ``env_options`` and
        ``rating_stop``. (A training step seeds its sampling with
        ``algorithms.train.step_seed(config.seed, step, rank)``.) Needs a team loaded from a run."""
        if self.config is None:
            raise ValueError("a team loaded from model names has no training settings: pass group_size, needs "
                             "and sampling to collect_groups yourself")
        cfg, r = self.config, self.config.rollout
        cfg.load_plugins()
        method = cfg.credit.build()
        needs = method.requires if len(r.roles) == 2 else needs_for(method, r.roles)  # (a chain: what it needs there)
        return dict(group_size=r.group_size, needs=needs, solo_samples=r.solo_samples,
                    answers_per_thought=r.answers_per_thought, sampling=self.sampling(seed),
                    env_options=self.env_options, rating_stop=getattr(method, "rating_stop", None))

    def collect(self, problems: Sequence[Any] | str, *, seed: int | None = None, verifier: Any = None,
                **changes: Any) -> Any:
        """Roll the team out on ``problems`` as a training step of its run does
        (:meth:`collect_options`; ``changes`` replace any of them, e.g. ``group_size=2``)."""
        return collect_groups(problems, self.policies, verifier=verifier, **{**self.collect_options(seed), **changes})


def load_team(model: str, *, solver_model: str | None = None, seed: int = 0, device: str | None = None) -> Team:
    """A :class:`Team` that unpacks as ``(policies, rollout config or None)``: a run directory (its
    ``checkpoint/``, with the run's rollout settings: budgets and prompt set; ``team.env_options``
    and ``team.sampling(seed)`` roll it out as it trained), or a model name/path for both roles
    (``solver_model`` for a different Solver).

    A directory that is neither a run (``checkpoint/``) nor a model (``config.json``) is a
    :class:`ValueError` that says so. Loading a run takes no lock, starts no verifier and writes nothing (it reads the
    checkpoint and builds the models), so a run can be evaluated while it trains.
    """
    run = Path(model)
    if is_run(run):
        ck = load_checkpoint(run / "checkpoint")
        cfg = TrainerConfig.from_dict(ck["config"])
        if device is not None:
            cfg.model.device = device
        policies = build_policies(cfg.model, cfg.rollout, seed=cfg.seed,
                                  source=lambda name: model_source(cfg, name, log=None))
        restore_team(policies, None, cfg.model.sharing, ck)
        for p in {id(p): p for p in policies.values()}.values():
            p.eval()
        return Team(policies, cfg.rollout, cfg)
    for name in filter(None, {model, solver_model}):
        p = Path(name).expanduser()
        if p.is_dir() and not (p / "config.json").exists():
            what = "an empty folder" if not any(p.iterdir()) else "a folder without checkpoint/ or config.json"
            raise ValueError(f"{name} is neither a run directory (no checkpoint/) nor a model directory (no config.json): "
                             f"{what}; pass a run's --out, a save_pretrained folder, or a built-in name (tiny, smollm2-135m)")
        if p.is_file():
            raise ValueError(f"{name} is a file; --model takes a run directory, a model directory or a model name")
        check_model_source(str(name), field="--model" if name == model else "--solver-model")
    thinker = TransformersPolicy.from_pretrained(model, seed=seed, device=device)
    if solver_model in (None, model):
        solver = thinker
    else:
        solver = TransformersPolicy.from_pretrained(solver_model, seed=seed, device=device)
    return Team({"thinker_0": thinker, "solver_0": solver}, None)
