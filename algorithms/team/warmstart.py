"""Warm start: a short supervised phase that teaches a tiny, randomly initialised model the
game's formats before RL (the ``tiny`` presets; a real instruct LLM does not need it).

On ``arith:`` problems (whose ``meta["steps"]`` hold the intermediate results) it trains one
model on four kinds of targets, cross-entropy on the target tokens only:

* Thinker prompt → a thought listing the intermediate results (``"3 + 7 = 10. 10 - 2 = 8."``);
* Solver prompt (problem + that thought) → the last result, boxed (``"10 - 2 = 8. \\boxed{8}"``);
* solo prompt (Thinker removed) → the worked steps and the boxed answer;
* SEPO rating prompt → a rating JSON (``{"outcome": "correct", "pair": [0.5, 0.5], ...}``).

On the *briefed* task (``arith:...,brief=1``: the Thinker alone sees the worked steps) the
targets are deliberately imperfect, so that RL and every credit method have something to work
with (:func:`briefed_example`): thoughts that relay the briefing, that also state the answer
(so the Solver-removed outcome varies), that garble a result, or that say nothing useful; a
Solver that boxes the thought's last result but sometimes slips; a solo Solver that works the
steps itself; and a rater whose pair follows who was right (:func:`briefed_rating`).

On the *relay* task of a chain of three roles (``arith:...,relay=1``: the first role sees the
answer's tens digit, the middle role its ones digit, ``Problem.meta["briefings"]``) the examples
are built through the env with the run's roles (:func:`chain_examples`; the prompts name the
roles): a first role that copies its briefing (or garbles the digit, or says nothing useful), a
middle role that writes the result from the first role's digit and its own (``"Result: 47"``,
sometimes garbled; a guessed tens digit when the first role gave none), and a last role that boxes
the last number it was shown (sometimes slipping; a guessed digit where a predecessor was removed).

Every role then starts from this model. The result is cached under
``<thinksolve cache>/warmstart/<key>`` (key = a hash of :class:`WarmStartConfig` and the
model name, the example mix and the warm-start version; a chain's roles and targets too), written
atomically, so it runs once per machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from agents import Completion, Messages, TransformersPolicy, annotate, atomic_dir, build_tiny_model, cache_dir, load_model
from thinksolve_env import Problem, ThinkSolveEnv, load_problems
from thinksolve_env import prompts as P
from thinksolve_env.prompts import CHAIN_TEMPLATES

from ..config import PROMPT_SETS, TrainerConfig, WarmStartConfig, prompt_templates

__all__ = ["WarmStartConfig", "warm_start", "warm_start_path", "warm_start_examples", "format_targets", "chain_examples"]

VERSION = 1


#: Shares of Thinker, Solver, solo and rating examples.
MIX = (0.4, 0.35, 0.15, 0.1)


def format_targets(problem: Problem) -> dict[str, str]:
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


#: Thought kinds of the briefed warm start and their shares: relay the briefing; relay it and
#: state the answer; relay it with the last result garbled; an empty-handed thought.
BRIEFED_THOUGHTS = {"relay": 0.45, "relay+answer": 0.15, "garbled": 0.25, "vague": 0.15}
#: Share of briefed Solver targets that slip (box a number off by 1..9 from the thought's).
BRIEFED_SOLVER_SLIP = 0.15
#: Version of the briefed targets (part of the cache key of a briefed warm start).
BRIEFED_VERSION = 3
#: Share of the briefed warm start (its first steps) spent on clean relays only: both roles
#: learn to copy the result first, then the mixed, imperfect targets shape the starting policy.
BRIEFED_CLEAN = 0.6
#: Shares of Thinker, Solver, solo and rating examples on briefed problems (relaying the result
#: is what both roles must learn first).
BRIEFED_MIX = (0.4, 0.4, 0.1, 0.1)
_VAGUE = "Work through the operations in order."


def _last_number(text: str) -> int | None:
    found = re.findall(r"-?\d+", text)
    return int(found[-1]) if found else None


def briefed_thought(problem: Problem, kind: str, rng: random.Random) -> str:
    """A thought of ``kind`` (:data:`BRIEFED_THOUGHTS`) for a briefed ``arith:`` problem: the
    briefing's result (``"Result: 7"``), garbled, stated as the final answer (which the verifier
    reads, so the Solver-removed outcome varies), or nothing useful. The result ends the thought, as
    it ends the briefing: a small model learns to copy a token at a fixed distance quickly."""
    answer = int(problem.answer)
    if kind == "vague":
        return _VAGUE
    value = answer
    if kind == "garbled":
        value = rng.choice([v for v in range(max(0, answer - 9), answer + 10) if v != answer and (answer > 9 or 0 <= v <= 9)])
    if kind == "relay+answer":
        return f"The final answer is {answer}"
    return f"Result: {value}"


def briefed_rating(problem: Problem, thought: str, answer_value: int | None, correct: bool) -> str:
    """The rule the briefed rater learns: the pair favours whoever was right. A thought whose last
    number is the reference answer is right; on a correct outcome a right thought takes the credit
    (0.8, 0.2), a wrong one leaves it to the Solver (0.2, 0.8); on a wrong outcome a wrong thought
    takes the blame (0.8, 0.2), a right one passes it to the Solver (0.2, 0.8)."""
    thought_right = _last_number(thought) == int(problem.answer)
    thinker_share = 0.8 if thought_right == correct else 0.2
    return json.dumps({"outcome": "correct" if correct else "wrong", "pair": [thinker_share, round(1 - thinker_share, 1)],
                       "brief_reason": "thought right" if thought_right else "thought wrong"})


def briefed_example(problem: Problem, kind: str, rng: random.Random, messages: Mapping[str, Callable[..., Messages]],
                    clean: bool = False) -> tuple[list[dict], str]:
    """One (prompt, target) pair of the briefed warm start; ``messages`` holds the prompt builders
    (``thinker``, ``solver``, ``solo``, ``rating``) of the run's prompt set. ``clean``: a relayed
    thought and a faithful Solver (the first phase, :data:`BRIEFED_CLEAN`)."""
    answer = int(problem.answer)
    tkind = "relay" if clean else rng.choices(list(BRIEFED_THOUGHTS), weights=list(BRIEFED_THOUGHTS.values()))[0]
    thought = briefed_thought(problem, tkind, rng)
    worked = " ".join(x + "." for x in problem.meta["steps"])
    if kind == "thinker":
        return messages["thinker"](problem.problem, briefing=problem.meta["briefing"]), thought
    if kind == "solo":
        return messages["solo"](problem.problem), f"{worked} \\boxed{{{answer}}}"
    relayed = _last_number(thought) if tkind != "vague" else None
    if kind == "solver":
        if relayed is None:  # nothing to copy: the Solver works the steps itself
            return messages["solver"](problem.problem, thought), f"{worked} \\boxed{{{answer}}}"
        value = relayed + rng.choice([-1, 1]) * rng.randint(1, 9) if not clean and rng.random() < BRIEFED_SOLVER_SLIP else relayed
        return messages["solver"](problem.problem, thought), f"\\boxed{{{value}}}"
    # rating: a transcript whose answer copies the thought, or slips
    value = relayed if relayed is not None and rng.random() < 0.6 else answer + rng.choice([0, 0, -1, 1]) * rng.randint(1, 9)
    correct = value == answer
    prompt = messages["rating"](problem.problem, thought, f"\\boxed{{{value}}}", correct, rng.choice(("Thinker", "Solver")))
    return prompt, briefed_rating(problem, thought, value, correct)


#: The relay warm start (a chain of three roles on ``arith:...,relay=1``): the first role's text
#: kinds (copy its briefing, a garbled digit, nothing useful) and the middle role's (the result
#: from both digits, one digit garbled, only its own digit).
RELAY_FIRST = {"relay": 0.6, "garbled": 0.25, "vague": 0.15}
RELAY_MIDDLE = {"combine": 0.65, "garbled": 0.25, "own": 0.1}
#: Share of the last role's targets that slip (box a number off by one digit).
RELAY_SLIP = 0.15
#: Shares of the examples at each chain position.
RELAY_MIX = (0.3, 0.35, 0.35)
#: Share of the middle and last roles' examples with a predecessor removed (the replays the
#: credit methods and the evaluation make): the middle role without the first; the last role
#: without the middle one, without the first, or alone.
RELAY_REMOVED = 0.25
#: Share of the relay warm start (its first steps) spent on faithful texts only.
RELAY_CLEAN = 0.5
#: Version of the relay targets (part of the cache key of a relay warm start).
RELAY_VERSION = 1
_RELAY_VAGUE = "no digit here"


def _digit(text: str | None, label: str) -> int | None:
    found = re.search(label + r"\D*(\d)", text or "")
    return int(found.group(1)) if found else None


def _relay_text(problem: Problem, position: int, shown: dict[str, str], roles: Sequence[str], rng: random.Random,
                clean: bool) -> str:
    """The target text of the role at ``position`` of the relay chain, given the texts of the
    present roles before it (``shown``; a removed role is absent)."""
    answer = int(problem.answer)
    tens, ones = answer // 10, answer % 10
    other = lambda d: rng.choice([x for x in range(10) if x != d])  # noqa: E731
    if position == 0:
        kind = "relay" if clean else rng.choices(list(RELAY_FIRST), weights=list(RELAY_FIRST.values()))[0]
        return {"relay": f"tens digit: {tens}", "garbled": f"tens digit: {other(tens)}", "vague": _RELAY_VAGUE}[kind]
    if position < len(roles) - 1:
        told = _digit(shown.get(roles[0]), "tens digit")
        t = told if told is not None else rng.randint(1, 9)  # no digit to take: a guess
        kind = "combine" if clean else rng.choices(list(RELAY_MIDDLE), weights=list(RELAY_MIDDLE.values()))[0]
        if kind == "own":
            return f"ones digit: {ones}"
        if kind == "garbled":
            t, o = (other(t), ones) if rng.random() < 0.5 else (t, other(ones))
            return f"Result: {max(t, 1)}{o}"
        return f"Result: {max(t, 1)}{ones}"
    # the last role: the result it was handed, else what the digits it saw say (a guess for the rest)
    result = _last_number(shown.get(roles[-2], "")) if roles[-2] in shown else None
    if result is None or not 10 <= result <= 99:
        t = _digit(shown.get(roles[0]), "tens digit")
        o = _digit(shown.get(roles[-2]), "ones digit")
        result = 10 * (t if t else rng.randint(1, 9)) + (o if o is not None else rng.randint(0, 9))
    if not clean and rng.random() < RELAY_SLIP:
        result = result + rng.choice([-1, 1]) * rng.randint(1, 9)
    return f"\\boxed{{{result}}}"


def _prompt_at(env: ThinkSolveEnv, index: int, removed: Sequence[str], texts: Mapping[str, str], role: str) -> list[dict]:
    """The chat prompt the env gives ``role`` on problem ``index`` with ``removed`` absent, after
    the present roles before it wrote ``texts``."""
    env.reset(options={"problem": index, "remove": list(removed) or None})
    while env.agent_selection != role:
        env.step(texts[env.agent_selection])
    return env.infos[role]["messages"]


def chain_examples(problems: Sequence[Problem], n: int, roles: Sequence[str], *, seed: int = 0,
                   prompts: str = "default") -> list[tuple[list[dict], str]]:
    """``n`` (chat prompt, target text) pairs of the relay warm start for the chain ``roles`` (three
    roles) on ``arith:...,relay=1`` problems, the prompts rendered by the env with the named prompt
    set: the first :data:`RELAY_CLEAN` share faithful, the rest as the module docstring says."""
    roles = tuple(roles)
    if len(roles) != 3:
        raise ValueError(f"the relay warm start is for a chain of three roles, got {list(roles)}")
    bad = [p.id for p in problems if len((p.meta or {}).get("briefings") or ()) != 3]
    if bad:
        raise ValueError(f"the relay warm start needs arith:...,relay=1 problems (meta['briefings'] for three "
                         f"positions); {bad[0]!r} has none")
    env = ThinkSolveEnv(list(problems), roles=roles, prompts=prompt_templates(prompts))
    rng = random.Random(seed)
    out = []
    for i in range(n):
        clean = i < RELAY_CLEAN * n
        index = rng.randrange(len(problems))
        position = rng.choices(range(3), weights=RELAY_MIX)[0]
        removed: list[str] = []
        if position and not clean and rng.random() < RELAY_REMOVED:
            removed = [roles[0]] if position == 1 else rng.choice([[roles[1]], [roles[0]], [roles[0], roles[1]]])
        shown: dict[str, str] = {}
        for k in range(position):
            if roles[k] not in removed:
                shown[roles[k]] = _relay_text(problems[index], k, shown, roles, rng, clean)
        prompt = _prompt_at(env, index, removed, shown, roles[position])
        out.append((prompt, _relay_text(problems[index], position, shown, roles, rng, clean)))
    env.close()
    return out


def warm_start_examples(problems: Sequence[Problem], n: int, *, mix: Sequence[float] = MIX, seed: int = 0,
                        prompts: str = "default", roles: Sequence[str] | None = None) -> list[tuple[list[dict], str]]:
    """``n`` (chat prompt, target text) pairs drawn from ``problems``, with the named prompt set
    (``rollout.prompts``). Problems with a briefing per chain position (``meta["briefings"]``,
    the relay task) give the examples of the chain ``roles`` (:func:`chain_examples`)."""

    if any((p.meta or {}).get("briefings") for p in problems):
        if roles is None or len(roles) < 3:
            raise ValueError("these problems brief each position of a chain (meta['briefings']): the warm start needs "
                             "the chain's roles (rollout.roles, three of them)")
        return chain_examples(problems, n, roles, seed=seed, prompts=prompts)
    ps = prompt_templates(prompts)
    thinker_messages, solver_messages = partial(P.thinker_messages, prompts=ps), partial(P.solver_messages, prompts=ps)
    solo_messages, rating_messages = partial(P.solo_messages, prompts=ps), partial(P.rating_messages, prompts=ps)

    rng = random.Random(seed)
    kinds = ("thinker", "solver", "solo", "rating")
    out = []
    builders = {"thinker": thinker_messages, "solver": solver_messages, "solo": solo_messages, "rating": rating_messages}
    for i in range(n):
        p = rng.choice(problems)
        if p.meta.get("briefing"):
            clean = i < BRIEFED_CLEAN * n
            kind = rng.choice(("thinker", "solver")) if clean else rng.choices(kinds, weights=BRIEFED_MIX)[0]
            out.append(briefed_example(p, kind, rng, builders, clean=clean))
            continue
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


def _chain(cfg: WarmStartConfig, roles: Sequence[str] | None) -> tuple[str, ...] | None:
    """The chain whose roles a warm start's examples name: ``roles`` when its data is the relay
    task (``relay=1``), else ``None`` (the examples do not depend on the team)."""
    return tuple(roles) if roles is not None and "relay=1" in str(cfg.data).replace(" ", "") else None


def _key(cfg: WarmStartConfig, model: str, prompts: str, roles: Sequence[str] | None = None) -> str:
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "enabled"}

    extra: dict[str, Any] = {}
    if "brief=1" in str(cfg.data).replace(" ", ""):  # the briefed targets are part of the key
        extra = {"briefed": [BRIEFED_VERSION, BRIEFED_MIX, BRIEFED_THOUGHTS, BRIEFED_SOLVER_SLIP, BRIEFED_CLEAN]}
    chain = _chain(cfg, roles)
    if chain is not None:  # the relay targets, the roles they name and the chain's prompt templates
        extra = {"relay": [RELAY_VERSION, RELAY_FIRST, RELAY_MIDDLE, RELAY_SLIP, RELAY_MIX, RELAY_REMOVED, RELAY_CLEAN],
                 "roles": list(chain), "chain_prompts": CHAIN_TEMPLATES.get(prompts, {})}
    blob = json.dumps({"version": VERSION, "model": model, "mix": MIX, "prompts": PROMPT_SETS[prompts], **settings, **extra},
                      sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def warm_start_path(cfg: WarmStartConfig, model: str = "tiny", prompts: str = "default",
                    roles: Sequence[str] | None = None) -> Path:
    """Where the warm start of ``model`` with settings ``cfg``, prompt set ``prompts`` (and, for
    the relay task, the chain ``roles``) is cached."""

    return cache_dir() / "warmstart" / f"{Path(model).name}-{_key(cfg, model, prompts, roles)}"


def _tokenize(policy, prompt, target):
    ids = policy.tokenizer.encode(target, add_special_tokens=False) + [policy.eos_token_ids[0]]
    c = Completion(text=target, token_ids=ids, logprobs=[0.0] * len(ids))
    return annotate(c, temperature=1.0, prompt_token_ids=policy.encode_prompt(prompt))


def train_format(policy: TransformersPolicy, problems: Sequence[Problem], cfg: WarmStartConfig,
                 log: Callable[[str], Any] | None = print, prompts: str = "default",
                 roles: Sequence[str] | None = None) -> list[float]:
    """Run the supervised phase on ``policy`` in place; returns the loss per step."""
    examples = warm_start_examples(problems, cfg.steps * cfg.batch_size, mix=MIX, seed=cfg.seed, prompts=prompts,
                                   roles=roles)
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


def warm_start(cfg: WarmStartConfig | None = None, *, model: str = "tiny", prompts: str = "default",
               log: Callable[[str], Any] | None = print, roles: Sequence[str] | None = None) -> Path:
    """The warm-started model directory (trained and cached on first use; atomic write).
    ``roles``: the team (``rollout.roles``), which the relay task's examples name."""

    cfg = cfg or WarmStartConfig()
    target = warm_start_path(cfg, model, prompts, roles)
    if (target / "config.json").exists():
        return target
    if log:
        log(f"warm start: training {model} on the formats ({cfg.steps} steps), caching to {target}")

    def write(tmp: Path) -> None:
        if model == "tiny" and cfg.model_config:
            size = dict(cfg.model_config)
            if "hidden_size" in size and "head_dim" not in size:
                size["head_dim"] = size["hidden_size"] // size.get("num_attention_heads", 4)
            net, tok = build_tiny_model(cfg.seed, **size)
        else:
            net, tok = load_model(model, seed=cfg.seed)
        policy = TransformersPolicy(net, tok, seed=cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            losses = train_format(policy, load_problems(cfg.data), cfg, log=log, prompts=prompts, roles=_chain(cfg, roles))
        policy.save_pretrained(tmp)
        (tmp / "warmstart.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "losses": losses}, default=list))

    return atomic_dir(target, write)


def model_source(config: TrainerConfig, name: str, log: Callable[[str], Any] | None = print) -> str:
    """What to load for model ``name`` in a run with ``config``: its warm-started directory when
    ``config.warm_start`` is enabled (trained and cached on first use), else ``name`` itself."""
    if not config.warm_start.enabled:
        return name
    return str(warm_start(config.warm_start, model=name, prompts=config.rollout.prompts, log=log,
                          roles=config.rollout.roles))
