"""Warm start: a short supervised phase that teaches a tiny, randomly initialised model the
game's formats before RL (the ``tiny`` presets; a real instruct LLM does not need it).

On ``arith:`` problems (whose ``meta["steps"]`` hold the intermediate results) it trains one
model on four kinds of targets, cross-entropy on the target tokens only:

* Thinker prompt → a thought listing the intermediate results (``"3 + 7 = 10. 10 - 2 = 8."``);
* Solver prompt (problem + that thought) → the last result, boxed (``"10 - 2 = 8. \\boxed{8}"``);
* solo prompt (Thinker removed) → the worked steps and the boxed answer;
* SEPO rating prompt → a rating JSON (``{"outcome": "correct", "pair": [0.5, 0.5], ...}``).

Both roles then start from this model. The result is cached under
``<thinksolve cache>/warmstart/<key>`` (key = a hash of :class:`WarmStartConfig` and the
model name, the example mix and the warm-start version), written atomically, so it runs once per machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path

import torch

from .config import WarmStartConfig

__all__ = ["WarmStartConfig", "warm_start", "warm_start_path", "warm_start_examples", "format_targets"]

VERSION = 1


#: Shares of Thinker, Solver, solo and rating examples.
MIX = (0.4, 0.35, 0.15, 0.1)


def format_targets(problem) -> dict[str, str]:
    """The target texts for one ``arith:`` problem, per kind."""
    steps = list(problem.meta.get("steps") or [])
    if not steps:
        raise ValueError(f"problem {problem.id!r} has no meta['steps']; the warm start needs the arith: task")
    thought = " ".join(s + "." for s in steps)
    return {
        "thinker": thought,
        "solver": f"{steps[-1]}. \\boxed{{{problem.answer}}}",
        "solo": f"{thought} \\boxed{{{problem.answer}}}",
        "rating": json.dumps({"outcome": "correct", "pair": [0.5, 0.5], "brief_reason": "both needed"}),
    }


def warm_start_examples(problems, n: int, *, mix=MIX, seed: int = 0, prompts: str = "default") -> list[tuple[list[dict], str]]:
    """``n`` (chat prompt, target text) pairs drawn from ``problems``, with the named prompt set
    (``rollout.prompts``)."""
    from functools import partial

    from thinksolve_env import prompts as P

    from .config import prompt_templates

    ps = prompt_templates(prompts)
    thinker_messages, solver_messages = partial(P.thinker_messages, prompts=ps), partial(P.solver_messages, prompts=ps)
    solo_messages, rating_messages = partial(P.solo_messages, prompts=ps), partial(P.rating_messages, prompts=ps)

    rng = random.Random(seed)
    kinds = ("thinker", "solver", "solo", "rating")
    out = []
    for _ in range(n):
        p = rng.choice(problems)
        kind = rng.choices(kinds, weights=mix)[0]
        t = format_targets(p)
        if kind == "thinker":
            prompt = thinker_messages(p.problem)
        elif kind == "solver":
            prompt = solver_messages(p.problem, t["thinker"])
        elif kind == "solo":
            prompt = solo_messages(p.problem)
        else:
            correct = rng.random() < 0.5
            answer = t["solver"] if correct else f"\\boxed{{{int(p.answer) + rng.randint(1, 9)}}}"
            prompt = rating_messages(p.problem, t["thinker"], answer, correct, rng.choice(("Thinker", "Solver")))
            t = {"rating": t["rating"].replace("correct", "correct" if correct else "wrong")}
        out.append((prompt, t[kind]))
    return out


def _key(cfg: WarmStartConfig, model: str, prompts: str) -> str:
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "enabled"}
    from .config import PROMPT_SETS

    blob = json.dumps({"version": VERSION, "model": model, "mix": MIX, "prompts": PROMPT_SETS[prompts], **settings},
                      sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def warm_start_path(cfg: WarmStartConfig, model: str = "tiny", prompts: str = "default") -> Path:
    """Where the warm start of ``model`` with settings ``cfg`` and prompt set ``prompts`` is cached."""
    from agents.models import cache_dir

    return cache_dir() / "warmstart" / f"{Path(model).name}-{_key(cfg, model, prompts)}"


def _tokenize(policy, prompt, target):
    from agents.base import Completion
    from agents.transformers_policy import annotate

    ids = policy.tokenizer.encode(target, add_special_tokens=False) + [policy.eos_token_ids[0]]
    c = Completion(text=target, token_ids=ids, logprobs=[0.0] * len(ids))
    return annotate(c, temperature=1.0, prompt_token_ids=policy.encode_prompt(prompt))


def train_format(policy, problems, cfg: WarmStartConfig, log=print, prompts: str = "default") -> list[float]:
    """Run the supervised phase on ``policy`` in place; returns the loss per step."""
    examples = warm_start_examples(problems, cfg.steps * cfg.batch_size, mix=MIX, seed=cfg.seed, prompts=prompts)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.9 * s / max(cfg.steps, 1))
    policy.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        batch = examples[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        prompts = [p for p, _ in batch]
        comps = [_tokenize(policy, p, t) for p, t in batch]
        logps = policy.logprobs(prompts, comps, batch_size=cfg.batch_size)
        tokens = sum(len(lp) for lp in logps)
        loss = -sum(lp.sum() for lp in logps) / tokens  # cross-entropy on target tokens only
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(policy.parameters()), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step % 50 == 0 or step == cfg.steps - 1):
            log(f"warm start: step {step + 1}/{cfg.steps} loss {losses[-1]:.3f} ({time.perf_counter() - t0:.0f}s)")
    policy.eval()
    return losses


def warm_start(cfg: WarmStartConfig | None = None, *, model: str = "tiny", prompts: str = "default", log=print) -> Path:
    """The warm-started model directory (trained and cached on first use; atomic write)."""
    from agents import TransformersPolicy
    from agents.models import _atomic_dir, load_model
    from thinksolve_env import load_problems

    cfg = cfg or WarmStartConfig()
    target = warm_start_path(cfg, model, prompts)
    if (target / "config.json").exists():
        return target
    if log:
        log(f"warm start: training {model} on the formats ({cfg.steps} steps), caching to {target}")

    def write(tmp: Path) -> None:
        if model == "tiny" and cfg.model_config:
            from agents.models import build_tiny_model

            size = dict(cfg.model_config)
            if "hidden_size" in size and "head_dim" not in size:
                size["head_dim"] = size["hidden_size"] // size.get("num_attention_heads", 4)
            net, tok = build_tiny_model(cfg.seed, **size)
        else:
            net, tok = load_model(model, seed=cfg.seed)
        policy = TransformersPolicy(net, tok, seed=cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            losses = train_format(policy, load_problems(cfg.data), cfg, log=log, prompts=prompts)
        policy.save_pretrained(tmp)
        (tmp / "warmstart.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "losses": losses}, default=list))

    return _atomic_dir(target, write)
