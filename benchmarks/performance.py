"""Performance in one run: credit-method step cost, rollout-engine overhead, verifier and env speed.

Rows (one per metric):

* ``ccpo_step_over_shared`` (target <= 1.25): median wall time of one ``Trainer.step()`` with
  credit ``ccpo`` (variant ``event``, the default) over the median with credit ``shared``, on the
  ``tiny-arith`` preset (group size 8, 4 Thinker-removed "solo" samples per problem that ride in
  the same Solver ``generate`` call as the joint prompts). One trainer per method is built once
  (same seed, so every trainer draws the same problems at a given step index and updates the
  same role); after one warm-up step each, steps are interleaved (shared, ccpo, sepo, ...,
  shared, ccpo, ...) so machine load hits every method alike. Optional rows give ``sepo``,
  ``difference`` and ``shapley`` over ``shared``; every method's row carries the per-phase
  medians (collect / credit / update seconds from the step's metrics row) and generated tokens.
* ``rollout_over_raw_generate``: the rollout engine (:func:`algorithms.rollout.collect_groups`:
  env resets and steps, prompt templating and tokenization, ``policy.generate`` per role and
  phase, verification) against transformers' raw ``model.generate`` on the same tokens. Greedy
  decoding (temperature 0) makes the tokens reproducible: collect_groups runs once on the
  tiny-arith problems with the warm-started tiny policies; every ``Completion`` records its
  ``prompt_token_ids`` and ``token_ids``. The raw side then calls ``model.generate`` (the
  Thinker's model on the Thinker batch, the Solver's on the Solver batch of joint + solo
  prompts, split into the same chunks of ``generation_batch_size`` prompts as the policy) on
  those prompt ids, left-padded, ``do_sample=False``, ``max_new_tokens`` = the longest
  completion in that chunk, the policy's EOS ids; transformers stops a batch when every row has
  produced an EOS, so the raw call runs as many decoding steps as the policy did (it keeps
  computing rows that already finished, the policy drops them). The row reports how many raw
  rows reproduce the policy's tokens exactly (cut after the first EOS). Ratio = median
  collect_groups time / (median raw Thinker time + median raw Solver time). Each collect_groups
  call gets a fresh verifier whose worker pool was started beforehand (cold verdict cache, as
  for new answers in training; pool start-up not timed). ``--smollm2`` adds the same row for
  SmolLM2-135M (one policy for both roles, default prompts, the smollm2-arith preset's sizes;
  ``--smollm2-repeats`` timed runs, the first collect_groups call counted, no warm-up).
* ``env_episodes_per_s`` / ``env_episodes_per_s_cold_verifier``: joint episodes per second of
  ``ThinkSolveEnv`` with constant-string policies (``benchmarks/env_throughput.py``'s loop), with
  the string layer only (workers=0) and with the default verifier from a cold cache.
* ``vllm_step_speedup_smollm2`` (target >= 1.4): median wall time of one ``Trainer.step()`` of
  the ``smollm2-arith`` preset with ``rollout.engine=transformers`` over the same with
  ``rollout.engine=vllm`` (CPU vLLM; greater is faster), one trainer each from the same seed,
  measured side by side in one process (1 warm-up step each, then ``--vllm-repeats`` interleaved
  steps, medians; the same problems and roles at each step index). The vLLM step includes the
  weight sync into the engine after the update. Needs vLLM (run it in ``.venv-vllm``); alone with
  ``--only vllm-step``, which merges the row into the existing results file; a full run where
  vLLM is missing keeps the row of the last ``--only vllm-step`` run.
* ``verifier_answers_per_s_*``: ``MathVerifier.verify_batch`` throughput on the first
  ``--verifier-problems`` MATH500 problems (``benchmarks/verifier_speed.py``'s workloads and
  runner: reference solutions, and rewritten equivalent answers), fresh verifier, pool started
  beforehand.

Usage::

    python benchmarks/performance.py [--repeats 8] [--credits ccpo sepo difference shapley]
        [--rollout-repeats 5] [--env-episodes 500] [--verifier-problems 100] [--smollm2] [--threads 1]
    .venv-vllm/bin/python benchmarks/performance.py --only vllm-step [--vllm-repeats 3]
    python benchmarks/performance.py --only steps [--before] [--repeats 16]
    python benchmarks/performance.py --only rating-call [--smollm2-repeats 2]

``--only steps`` measures the step-cost rows alone and merges them (and their note) into the
existing results file, the other rows kept as they were measured. ``--before`` adds, in the same
interleaved run, a shared and a sepo trainer with the rating and prefill savings switched off
(``share_prefix=False`` on their policies, no rating stop rule): SEPO's ratio as it was, measured
next to the ratio as it is. ``--only rating-call`` times SEPO's rating phase with SmolLM2-135M as
both raters, before and after those savings (``sepo_ratings_speedup_smollm2``; merged the same way).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _results import write_results  # noqa: E402
from generation_speed import raw_generate  # noqa: E402

TARGET_CCPO = 1.25
TARGET_SEPO = 1.6
TARGET_VLLM_STEP = 1.4
VLLM_METRIC = "vllm_step_speedup_smollm2"
COLUMNS = ["metric", "value", "target", "detail"]


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------- 1. step cost per credit method


def build_trainers(credits: list[str], preset_name: str = "tiny-arith", overrides: list[str] | None = None) -> dict:
    """One Trainer per credit method (``shared`` first), same preset and seed, no TensorBoard,
    output in a temporary directory. ``overrides`` are ``section.field=value`` strings."""
    from algorithms.config import apply_credit, apply_overrides, preset
    from algorithms.train import Trainer

    base = preset(preset_name)
    if overrides:
        base = apply_overrides(base, overrides)
    base.tensorboard = False
    trainers = {}
    for name in ["shared", *[c for c in credits if c != "shared"]]:
        cfg = apply_credit(base, name)
        cfg.out = tempfile.mkdtemp(prefix=f"perf-{name}-")
        trainers[name] = Trainer(cfg, log=None)
    return trainers


def build_before(overrides: list[str] | None = None) -> dict:
    """A shared and a sepo trainer as before the rating savings: no shared prompt prefixes in
    their policies' prefill, no stop rule for the ratings (merging and greedy dedup do not apply
    to tiny-arith: separate models, ratings sampled at temperature 1)."""
    trainers = build_trainers(["sepo"], overrides=overrides)
    for t in trainers.values():
        for pol in {id(p): p for p in t.rollout_policies.values()}.values():
            pol.share_prefix = False
        t.credit.rating_stop = None
    return {f"{n}-before": t for n, t in trainers.items()}


def _problem_ids(trainer) -> list[str]:
    return [g.problem.id for g in trainer.last_groups]


def step_costs(trainers: dict, repeats: int, warmup: int = 1) -> dict:
    """Interleaved timed steps; returns per method the step times, phase times, tokens, and a
    check that every method saw the same problems and updated the same roles at each step."""
    names = list(trainers)
    res = {n: {"step_s": [], "phases": {"collect": [], "credit": [], "update": []}, "tokens": [], "solver_rows": []}
           for n in names}
    same_problems, same_roles = True, True
    for k in range(warmup + repeats):
        seen = {}
        for n in names:
            t0 = time.perf_counter()
            row = trainers[n].step()
            wall = time.perf_counter() - t0
            seen[n] = (_problem_ids(trainers[n]), tuple(row["updated"]))
            if k < warmup:
                continue
            r = res[n]
            r["step_s"].append(wall)
            for p in r["phases"]:
                r["phases"][p].append(row["time"][p])
            r["tokens"].append(row["tokens"])
        first = seen[names[0]]
        same_problems &= all(v[0] == first[0] for v in seen.values())
        same_roles &= all(v[1] == first[1] for v in seen.values())
    for n in names:
        r = res[n]
        r["median_step_s"] = _med(r["step_s"])
        r["median_phase_s"] = {p: _med(v) for p, v in r["phases"].items()}
        tokens = r["tokens"]
        r["mean_tokens"] = {p: statistics.mean(t[p] for t in tokens) for p in tokens[0]} if tokens else {}
    base = res[names[0]]
    for n in names:
        r = res[n]
        r["ratio_over_shared"] = r["median_step_s"] / base["median_step_s"]
        # the same ratio step by step (paired at equal step index), then its median
        r["paired_ratio_median"] = _med([a / b for a, b in zip(r["step_s"], base["step_s"])])
    return {"methods": res, "same_problems": same_problems, "same_roles": same_roles, "repeats": repeats}


def step_rows(costs: dict) -> list[dict]:
    rows = []
    methods = costs["methods"]
    for n, r in methods.items():
        if n == "shared" or n.endswith("-before"):
            continue
        ph = r["median_phase_s"]
        base = methods["shared"]["median_phase_s"]
        tok = r["mean_tokens"]
        extra = {k: round(v) for k, v in tok.items() if v and k not in ("thinker", "solver")}
        detail = (f"median step {r['median_step_s']:.3f}s vs shared {methods['shared']['median_step_s']:.3f}s "
                  f"(paired median {r['paired_ratio_median']:.3f}); collect/credit/update "
                  f"{ph['collect']:.3f}/{ph['credit']:.4f}/{ph['update']:.3f}s vs shared "
                  f"{base['collect']:.3f}/{base['credit']:.4f}/{base['update']:.3f}s; "
                  f"extra tokens/step {extra or 0}")
        if n == "sepo" and "sepo-before" in methods:
            old, old_base = methods["sepo-before"], methods["shared-before"]
            detail += (f"; before the rating savings, in the same run: {old['median_step_s']:.3f}s vs "
                       f"{old_base['median_step_s']:.3f}s = {old['median_step_s'] / old_base['median_step_s']:.3f} "
                       f"(collect {old['median_phase_s']['collect']:.3f}s vs {old_base['median_phase_s']['collect']:.3f}s)")
        rows.append({"metric": f"{n}_step_over_shared", "value": round(r["ratio_over_shared"], 3),
                     "target": f"<= {TARGET_CCPO}" if n == "ccpo" else f"<= {TARGET_SEPO}" if n == "sepo" else "",
                     "detail": detail})
    return rows


def step_note(costs: dict, setup: str, repeats: int) -> str:
    """The step-cost paragraph of the results' notes."""
    methods = costs["methods"]
    ccpo = methods["ccpo"]["ratio_over_shared"] if "ccpo" in methods else float("nan")
    shared_ph = methods["shared"]["median_phase_s"]
    out = (f"Step cost: tiny-arith preset ({setup}), one trainer per credit method from the same seed; 1 warm-up step "
           f"then {repeats} interleaved steps each, medians. Target ccpo_step_over_shared <= {TARGET_CCPO}: "
           f"{'met' if ccpo <= TARGET_CCPO else 'NOT met'} ({ccpo:.3f}). Every method drew the same problems at each "
           f"step index: {costs['same_problems']}; updated the same role: {costs['same_roles']} (alternating, period 5). "
           f"Shared's median phases: collect {shared_ph['collect']:.3f}s, credit {shared_ph['credit']:.4f}s, update "
           f"{shared_ph['update']:.3f}s. 'paired median' in the detail is the median over step indices of the per-step "
           "ratio, a second estimate under drifting load. The weights of the trainers may drift apart after updates "
           "(different rewards), so generated lengths can differ between methods; the detail column gives the mean "
           "extra tokens per step of each method's counterfactual phases.")
    if "sepo" in methods:
        sepo = methods["sepo"]["ratio_over_shared"]
        out += (f" SEPO target sepo_step_over_shared <= {TARGET_SEPO}: {'met' if sepo <= TARGET_SEPO else 'NOT met'} "
                f"({sepo:.3f}).")
    if "sepo-before" in methods:
        old = methods["sepo-before"]["median_step_s"] / methods["shared-before"]["median_step_s"]
        out += (f" With the rating and prefill savings switched off (shared-before and sepo-before trainers, "
                f"interleaved with the others): {old:.3f}.")
    return out


def merge_steps(costs: dict, note: str, command: str) -> str:
    """Put the step-cost rows and their note into the existing performance results file,
    replacing the earlier ones; the other rows are kept as they were measured."""
    import json

    from _results import RESULTS

    path = RESULTS / "performance.json"
    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "notes": ""}
    new_rows = step_rows(costs)
    names = {r["metric"] for r in new_rows}
    kept = [x for x in old.get("rows", []) if x.get("metric") not in names]
    rows = new_rows + kept
    paragraphs = [p for p in old.get("notes", "").split("\n\n") if p and not p.startswith("Step cost:")]
    notes = "\n\n".join([*paragraphs[:1], note, *paragraphs[1:]]) if paragraphs else note
    written_anew = ("name", "command", "date", "versions", "columns", "rows", "notes")
    keep = {k: v for k, v in old.items() if k not in written_anew}
    for r in costs["methods"].values():
        r.pop("tokens", None)
    keep["step_costs"] = costs
    keep["step_costs_command"] = command
    return write_results("performance", COLUMNS, rows, notes=notes, extra=keep, command=old.get("command") or command)


# --------------------------------------------------------------------------- 2. rollout engine vs raw generate


class _TimedPolicy:
    """Delegates ``generate`` to a policy and adds up the seconds spent in it."""

    def __init__(self, inner, clock: dict) -> None:
        self.inner, self.clock = inner, clock

    def generate(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self.inner.generate(*a, **kw)
        finally:
            self.clock["generate_s"] += time.perf_counter() - t0


def _fresh_verifier():
    from thinksolve_env import MathVerifier

    v = MathVerifier()
    v.verify("so the answer is \\boxed{\\frac{2}{4}}", "\\frac{1}{2}")  # starts the worker pool (not timed)
    return v


def _raw_generate(policy, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """transformers' ``model.generate`` on left-padded prompt ids, greedy; rows cut after the
    first EOS."""
    import torch

    width = max(map(len, prompt_ids))
    pad = policy.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompt_ids], device=policy.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=policy.device)
    return raw_generate(policy.model, ids, mask, max_new_tokens, list(policy.eos_token_ids), pad, do_sample=False)


def _chunks(completions, size: int):
    return [completions[i:i + size] for i in range(0, len(completions), size)]


def rollout_overhead(policies: dict, problems: list, *, group_size: int, solo_samples: int, needs,
                     thinker_max_new_tokens: int, solver_max_new_tokens: int, env_options: dict | None,
                     repeats: int, warmup: bool = True) -> dict:
    """Time greedy collect_groups against raw ``model.generate`` on the same prompt batches.

    With ``warmup`` each side runs once untimed first; without it (slow models, where first-call
    costs are negligible) the first collect_groups call is already a timed repeat."""
    from algorithms.rollout import collect_groups
    from thinksolve_env.env import SOLVER, THINKER

    kw = dict(group_size=group_size, needs=needs, solo_samples=solo_samples, temperature=0.0,
              thinker_max_new_tokens=thinker_max_new_tokens, solver_max_new_tokens=solver_max_new_tokens,
              env_options=env_options)
    was = {id(p): p.model.training for p in policies.values()}
    for p in policies.values():
        p.model.eval()

    def collect():
        clock = {"generate_s": 0.0}
        timed = {role: _TimedPolicy(p, clock) for role, p in policies.items()}
        if policies["thinker_0"] is policies["solver_0"]:
            timed["solver_0"] = timed["thinker_0"]
        v = _fresh_verifier()
        try:
            t0 = time.perf_counter()
            groups = collect_groups(problems, timed, verifier=v, **kw)
            wall = time.perf_counter() - t0
        finally:
            v.close()
        return groups, wall, clock["generate_s"]

    groups, wall, gen = collect()  # its completions define the batches
    first = None if warmup else (wall, gen)
    # The two generate calls, in collect_groups' order (Thinker: joint slots; Solver: joint, then solo).
    thinker_batch = [e.completions[THINKER] for g in groups for e in g.episodes]
    solver_batch = ([e.completions[SOLVER] for g in groups for e in g.episodes]
                    + [c for g in groups for c in g.solo_completions])
    batches = {"thinker": (policies[THINKER], thinker_batch), "solver": (policies[SOLVER], solver_batch)}

    def raw(role):
        pol, comps = batches[role]
        outs = []
        for chunk in _chunks(comps, pol.generation_batch_size):
            n = max(1, max(len(c.token_ids) for c in chunk))
            outs.extend(_raw_generate(pol, [c.prompt_token_ids for c in chunk], n))
        return outs

    if warmup:
        for role in batches:
            raw(role)
    times = {"collect": [], "generate_in_collect": [], "raw_thinker": [], "raw_solver": []}
    same_tokens = True
    raw_out = {}
    for k in range(repeats):
        g2, wall, gen = (groups, *first) if first and k == 0 else collect()
        times["collect"].append(wall)
        times["generate_in_collect"].append(gen)
        t2 = [e.completions[THINKER].token_ids for g in g2 for e in g.episodes]
        same_tokens &= t2 == [c.token_ids for c in thinker_batch]
        for role in batches:
            t0 = time.perf_counter()
            raw_out[role] = raw(role)
            times[f"raw_{role}"].append(time.perf_counter() - t0)
    for p in policies.values():
        p.model.train(was[id(p)])
    med = {k: _med(v) for k, v in times.items()}
    match = {role: sum(a == c.token_ids for a, c in zip(raw_out[role], comps)) for role, (_, comps) in batches.items()}
    policy_tokens = {role: sum(len(c.token_ids) for c in comps) for role, (_, comps) in batches.items()}
    raw_tokens = {role: sum(map(len, raw_out[role])) for role in batches}
    raw_total = med["raw_thinker"] + med["raw_solver"]
    return {
        "ratio": med["collect"] / raw_total,
        "generate_over_raw": med["generate_in_collect"] / raw_total,
        "median_s": med,
        "runs_s": times,
        "rows": {role: len(comps) for role, (_, comps) in batches.items()},
        "policy_tokens": policy_tokens,
        "raw_tokens": raw_tokens,
        "raw_rows_matching_policy": match,
        "greedy_reproducible": bool(same_tokens),
        "repeats": repeats,
        "warmup": warmup,
    }


def rollout_row(name: str, r: dict, model: str) -> dict:
    m = r["median_s"]
    detail = (f"{model}: collect_groups {m['collect']:.3f}s (in policy.generate {m['generate_in_collect']:.3f}s, "
              f"{r['generate_over_raw']:.2f}x raw) vs raw model.generate {m['raw_thinker']:.3f}s Thinker "
              f"({r['rows']['thinker']} rows) + {m['raw_solver']:.3f}s Solver ({r['rows']['solver']} rows); "
              f"tokens policy {r['policy_tokens']} / raw {r['raw_tokens']}; raw rows = policy tokens: "
              f"{r['raw_rows_matching_policy']['thinker']}/{r['rows']['thinker']} Thinker, "
              f"{r['raw_rows_matching_policy']['solver']}/{r['rows']['solver']} Solver")
    return {"metric": name, "value": round(r["ratio"], 3), "target": "", "detail": detail}


def tiny_rollout(trainer, repeats: int) -> dict:
    from algorithms.config import prompt_templates

    cfg = trainer.config
    r = cfg.rollout
    problems = trainer.problems[: r.problems_per_step]
    return rollout_overhead(trainer.rollout_policies, problems, group_size=r.group_size, solo_samples=r.solo_samples,
                            needs=["solo"], thinker_max_new_tokens=r.thinker_max_new_tokens,
                            solver_max_new_tokens=r.solver_max_new_tokens,
                            env_options={"prompts": prompt_templates(r.prompts)}, repeats=repeats)


def smollm2_rollout(repeats: int, max_new_tokens: int | None = None) -> dict:
    from agents import TransformersPolicy
    from algorithms.config import preset
    from thinksolve_env import load_problems

    cfg = preset("smollm2-arith")
    r = cfg.rollout
    pol = TransformersPolicy.from_pretrained("smollm2-135m", seed=0)
    problems = load_problems(cfg.train_data)[: r.problems_per_step]
    return rollout_overhead({"thinker_0": pol, "solver_0": pol}, problems, group_size=r.group_size,
                            solo_samples=r.solo_samples, needs=["solo"],
                            thinker_max_new_tokens=max_new_tokens or r.thinker_max_new_tokens,
                            solver_max_new_tokens=max_new_tokens or r.solver_max_new_tokens, env_options=None,
                            repeats=repeats, warmup=False)


def smollm2_rating_call(repeats: int, n_problems: int = 2, group: int = 4, budget: int = 64) -> dict:
    """SEPO's rating phase with SmolLM2-135M as both raters (one policy object, as in
    smollm2-arith), before and after the rating savings, interleaved: before = one ``generate``
    call per rater, whole prompts prefilled, no stop rule; after = what ``collect_groups`` does
    now (one call for both raters, shared prefixes prefilled once, SEPO's stop rule). Greedy,
    default prompts, ``n_problems`` x ``group`` transcripts; checks that every parsed rating is
    the same on both sides."""
    from agents import TransformersPolicy
    from algorithms.credit import parse_rating, rating_complete
    from thinksolve_env import load_problems
    from thinksolve_env.prompts import rating_prompts

    pol = TransformersPolicy.from_pretrained("smollm2-135m", seed=0)
    problems = load_problems("arith:n=50,difficulty=1")[:n_problems]
    prompts, verdicts = [], []
    for p in problems:
        for j in range(group):
            right = j % 2 == 0
            thought = (f"Work the inner part first; it comes to {p.answer}." if right
                       else f"Try option {j}; the numbers look close to {j + 3}.")
            answer = f"So the answer is \\boxed{{{p.answer if right else j + 3}}}."
            prompts.append(rating_prompts(p.problem, thought, answer, right))
            verdicts.append(right)
    t_prompts = [x["thinker_0"] for x in prompts]
    s_prompts = [x["solver_0"] for x in prompts]
    times = {"before": [], "after": []}
    out = {}
    for _ in range(repeats):
        pol.share_prefix, pol.prefill_tokens = False, 0
        t0 = time.perf_counter()
        before = (pol.generate(t_prompts, max_new_tokens=budget, temperature=0.0)
                  + pol.generate(s_prompts, max_new_tokens=budget, temperature=0.0))
        times["before"].append(time.perf_counter() - t0)
        out["before_prefill_tokens"] = pol.prefill_tokens
        pol.share_prefix, pol.prefill_tokens = True, 0
        t0 = time.perf_counter()
        after = pol.generate(t_prompts + s_prompts, max_new_tokens=budget, temperature=0.0, stop=rating_complete)
        times["after"].append(time.perf_counter() - t0)
        out["after_prefill_tokens"] = pol.prefill_tokens
    both = verdicts + verdicts
    same = all(parse_rating(a.text, c) == parse_rating(b.text, c) for a, b, c in zip(before, after, both))
    med = {k: _med(v) for k, v in times.items()}
    return {"speedup": med["before"] / med["after"], "median_s": med, "runs_s": times, "ratings": len(both),
            "budget": budget, "repeats": repeats, "same_parsed_ratings": same,
            "tokens": {"before": sum(len(c.token_ids) for c in before), "after": sum(len(c.token_ids) for c in after)},
            "stopped_early": sum(c.finish_reason == "stop" and c.token_ids[-1] not in pol.eos_token_ids for c in after),
            "valid": sum(parse_rating(c.text, v).valid for c, v in zip(after, both)), **out}


RATING_METRIC = "sepo_ratings_speedup_smollm2"


def rating_call_row(r: dict) -> dict:
    m, tok = r["median_s"], r["tokens"]
    detail = (f"SmolLM2-135M writing {r['ratings']} ratings ({r['ratings'] // 2} transcripts x both raters; greedy, "
              f"default prompts, <= {r['budget']} tokens): {m['before']:.2f}s as two calls with whole-prompt prefill "
              f"vs {m['after']:.2f}s as one call with shared prefixes and the stop rule; prompt tokens prefilled "
              f"{r['before_prefill_tokens']} vs {r['after_prefill_tokens']}; generated tokens {tok['before']} vs "
              f"{tok['after']} ({r['stopped_early']} ratings stopped early, {r['valid']} valid); parsed ratings "
              f"identical: {r['same_parsed_ratings']}; {r['repeats']} interleaved repeats, medians")
    return {"metric": RATING_METRIC, "value": round(r["speedup"], 3), "target": "", "detail": detail}


def merge_rating_call(r: dict, command: str) -> str:
    """Put the SmolLM2 rating-call row into the existing performance results file."""
    import json

    from _results import RESULTS

    path = RESULTS / "performance.json"
    old = json.loads(path.read_text())
    row = rating_call_row(r)
    rows = [x for x in old.get("rows", []) if x.get("metric") != RATING_METRIC]
    at = next((k + 1 for k, x in enumerate(rows) if x.get("metric") == "sepo_step_over_shared"), len(rows))
    rows.insert(at, row)
    written_anew = ("name", "command", "date", "versions", "columns", "rows", "notes")
    keep = {k: v for k, v in old.items() if k not in written_anew}
    keep["smollm2_rating_call"] = {**r, "command": command}
    return write_results("performance", COLUMNS, rows, notes=old.get("notes", ""), extra=keep,
                         command=old.get("command") or command)


# --------------------------------------------------------------------------- 3. env and verifier throughput


def env_throughput(episodes: int, data: str) -> dict:
    import env_throughput as et

    from thinksolve_env import MathVerifier, ThinkSolveEnv, load_problems

    problems = load_problems(data)
    thought = "Consider the structure of the problem; the key step is to simplify first. \\boxed{1}"
    answer = "So the answer is \\boxed{1}."
    out = {}
    with MathVerifier(workers=0) as v:
        e = ThinkSolveEnv(problems, verifier=v)
        et.run(e, 50, None, len(problems), answer, thought)  # warm-up
        out["string_layer"] = et.run(e, episodes, None, len(problems), answer, thought)
    with MathVerifier() as v:
        v.verify("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}")  # pool start, not timed
        e = ThinkSolveEnv(problems, verifier=v)
        out["cold_verifier"] = et.run(e, episodes, None, len(problems), answer, thought)
    out["episodes"] = episodes
    return out


def verifier_throughput(problems: int, data: str, workers: int = 2) -> dict:
    import logging

    import verifier_speed as vs

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rows = vs.load_rows(Path(data), problems)
    warm = (vs.wrap("\\frac{3}{7}+\\frac{1}{7}"), "\\frac{4}{7}")
    rewritten = []
    for r in rows:
        rw = vs.rewrite(r["answer"])
        rewritten.append((vs.wrap(rw if rw != r["answer"] else " ".join(r["answer"].split()) + " "), r["answer"]))
    out = {}
    for name, pairs in (("solutions", [(r["solution"], r["answer"]) for r in rows]), ("rewritten", rewritten)):
        res = vs.run_verifier(pairs, workers, warm)
        out[name] = {"pairs": len(pairs), "pairs_per_s": len(pairs) / res["wall_s"], "correct": res["correct"],
                     "p50_ms": 1000 * vs.pct(res["latencies"], 50), "stats": res["stats"],
                     "pool_start_s": res["pool_start_s"]}
    out["workers"] = workers
    return out


def throughput_rows(env: dict | None, ver: dict | None) -> list[dict]:
    rows = []
    if env:
        rows.append({"metric": "env_episodes_per_s", "value": round(env["string_layer"], 1), "target": "",
                     "detail": f"joint episodes (nobody removed), ThinkSolveEnv, MATH500, constant-string policies, "
                               f"string-layer verifier (workers=0), {env['episodes']} episodes"})
        rows.append({"metric": "env_episodes_per_s_cold_verifier", "value": round(env["cold_verifier"], 1),
                     "target": "",
                     "detail": f"the same with the default verifier (2 workers), cold cache: every wrong answer "
                               f"is one symbolic check, {env['episodes']} episodes"})
    if ver:
        for name, r in ver.items():
            if not isinstance(r, dict):
                continue
            s = r["stats"]
            rows.append({"metric": f"verifier_answers_per_s_{name}", "value": round(r["pairs_per_s"], 1), "target": "",
                         "detail": f"MathVerifier({ver['workers']} workers).verify_batch on {r['pairs']} MATH500 pairs "
                                   f"({name}), cold cache; judged equal {r['correct']}/{r['pairs']}; fast/symbolic "
                                   f"{s['fast']}/{s['symbolic']}; single-call p50 {r['p50_ms']:.2f} ms"})
    return rows


# --------------------------------------------------------------------------- 4. vLLM engine step vs transformers step


def vllm_step(repeats: int, preset_name: str = "smollm2-arith", overrides: list[str] | None = None) -> dict:
    """Interleaved training steps of two trainers that differ only in ``rollout.engine``; the
    transformers one first (it is the base of the ratio)."""
    import copy

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process (CPU vLLM)
    from algorithms.config import apply_overrides, preset
    from algorithms.train import Trainer

    base = preset(preset_name)
    if overrides:
        base = apply_overrides(base, overrides)
    base.tensorboard = False
    trainers = {}
    try:
        for engine in ("transformers", "vllm"):
            cfg = copy.deepcopy(base)
            cfg.rollout.engine = engine
            cfg.out = tempfile.mkdtemp(prefix=f"perf-{engine}-")
            trainers[engine] = Trainer(cfg, log=None)
        costs = step_costs(trainers, repeats)
        engine = trainers["vllm"].rollout_policies["solver_0"]
        cache = dict(engine.prefix_cache)
        sync = list(getattr(engine, "sync_seconds", []))
    finally:
        for t in trainers.values():
            t.close()
    hf, vl = costs["methods"]["transformers"], costs["methods"]["vllm"]
    return {"preset": preset_name, "overrides": list(overrides or []), "repeats": repeats,
            "speedup": hf["median_step_s"] / vl["median_step_s"],
            "paired_speedup_median": _med([a / b for a, b in zip(hf["step_s"], vl["step_s"])]),
            # generation (collect phase) step by step, paired at equal step index, then the median
            "collect_speedup": _med([a / b for a, b in zip(hf["phases"]["collect"], vl["phases"]["collect"])]),
            "transformers": {k: hf[k] for k in ("median_step_s", "median_phase_s", "step_s", "phases", "mean_tokens")},
            "vllm": {k: vl[k] for k in ("median_step_s", "median_phase_s", "step_s", "phases", "mean_tokens")},
            "vllm_prefix_cache": cache, "vllm_sync_s": sync, "vllm_median_sync_s": _med(sync),
            "same_problems": costs["same_problems"], "same_roles": costs["same_roles"]}


def vllm_step_row(r: dict) -> dict:
    hf, vl = r["transformers"], r["vllm"]
    ph, pv = hf["median_phase_s"], vl["median_phase_s"]
    detail = (f"{r['preset']} step with rollout.engine=transformers {hf['median_step_s']:.2f}s vs vllm "
              f"{vl['median_step_s']:.2f}s (paired median {r['paired_speedup_median']:.2f}x); collect/credit/update "
              f"{ph['collect']:.2f}/{ph['credit']:.3f}/{ph['update']:.2f}s vs {pv['collect']:.2f}/{pv['credit']:.3f}/"
              f"{pv['update']:.2f}s (generation {r['collect_speedup']:.2f}x, paired median; vLLM's update includes "
              f"the weight sync, median {r.get('vllm_median_sync_s', float('nan')):.2f}s); "
              f"tokens/step {({k: round(v) for k, v in hf['mean_tokens'].items()})} vs "
              f"{({k: round(v) for k, v in vl['mean_tokens'].items()})}")
    return {"metric": VLLM_METRIC, "value": round(r["speedup"], 3), "target": f">= {TARGET_VLLM_STEP}",
            "detail": detail}


def vllm_step_note(r: dict) -> str:
    met = r["speedup"] >= TARGET_VLLM_STEP
    return (f"vLLM step: {r['preset']} preset{' with ' + ' '.join(r['overrides']) if r['overrides'] else ''}, one "
            f"trainer per rollout engine from the same seed in one process (vLLM in-process, CPU build), 1 warm-up "
            f"step then {r['repeats']} interleaved steps each, medians. Target {VLLM_METRIC} >= {TARGET_VLLM_STEP}: "
            f"{'met' if met else 'NOT met'} ({r['speedup']:.3f}); the same problems at each step index: "
            f"{r['same_problems']}, the same roles updated: {r['same_roles']}. The two engines sample differently "
            "(different random streams), so rewards, updates and generated lengths can differ a little between the "
            "sides; the detail column gives both sides' tokens per step. Measured by "
            f"`{r.get('command', 'benchmarks/performance.py --only vllm-step')}`.")


def merge_vllm_step(r: dict) -> str:
    """Put the vLLM row (and its note paragraph and details) into the existing performance results
    file, replacing an earlier one; the rest of the file is kept as it was measured."""
    import json

    from _results import RESULTS

    path = RESULTS / "performance.json"
    old = json.loads(path.read_text()) if path.exists() else {"rows": [], "notes": "", "command": None}
    rows = [x for x in old.get("rows", []) if x.get("metric") != VLLM_METRIC] + [vllm_step_row(r)]
    paragraphs = [p for p in old.get("notes", "").split("\n\n") if p and not p.startswith("vLLM step:")]
    notes = "\n\n".join([*paragraphs, vllm_step_note(r)])
    written_anew = ("name", "command", "date", "versions", "columns", "rows", "notes")
    keep = {k: v for k, v in old.items() if k not in written_anew}
    keep["vllm_step"] = r
    if old.get("versions"):
        keep["versions_of_the_other_rows"] = old["versions"]  # `versions` is this (vLLM) environment's
    return write_results("performance", COLUMNS, rows, notes=notes, extra=keep,
                         command=old.get("command") or r["command"])


def _previous_vllm_step() -> dict | None:
    import json

    from _results import RESULTS

    path = RESULTS / "performance.json"
    try:
        return json.loads(path.read_text()).get("vllm_step")
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- main


def only_steps(args, overrides: list[str], argv: list[str] | None) -> dict:
    """``--only steps``: the step-cost rows, merged into the results file."""
    credits = ["ccpo", *[c for c in args.credits if c not in ("ccpo", "shared")]]
    print(f"[perf] building {len(credits) + 1 + 2 * args.before} tiny-arith trainers ...", flush=True)
    load_start = os.getloadavg()
    trainers = build_trainers(credits, overrides=overrides)
    if args.before:
        trainers.update(build_before(overrides))
    ro = trainers["shared"].config.rollout
    setup = (f"{ro.problems_per_step} problems x group {ro.group_size}, {ro.solo_samples} solo samples per problem, "
             f"Thinker {ro.thinker_max_new_tokens} / Solver {ro.solver_max_new_tokens} / rating "
             f"{ro.rating_max_new_tokens} new tokens, sampled at temperature {ro.temperature:g}")
    try:
        costs = step_costs(trainers, args.repeats)
    finally:
        for t in trainers.values():
            t.close()
    for n, r in costs["methods"].items():
        print(f"[perf] {n:14s} median step {r['median_step_s']:.3f}s ratio {r['ratio_over_shared']:.3f} "
              f"phases {({k: round(v, 3) for k, v in r['median_phase_s'].items()})}", flush=True)
    load_end = os.getloadavg()
    note = (step_note(costs, setup, args.repeats) + f" (Measured by `--only steps`: 1-min load average "
            f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end.)")
    command = " ".join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    if args.no_write:
        from _results import markdown_table

        print(markdown_table(COLUMNS, step_rows(costs)))
        return {"rows": step_rows(costs), "costs": costs}
    rows = step_rows(costs)
    print(merge_steps(costs, note, command))
    return {"rows": rows, "costs": costs}


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=16, help="timed training steps per credit method")
    ap.add_argument("--credits", nargs="*", default=["ccpo", "sepo", "difference", "shapley"],
                    help="credit methods compared with shared (ccpo is always included)")
    ap.add_argument("--rollout-repeats", type=int, default=5)
    ap.add_argument("--env-episodes", type=int, default=500)
    ap.add_argument("--verifier-problems", type=int, default=100)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "math" / "math500.jsonl"))
    ap.add_argument("--smollm2", action="store_true", help="also measure the rollout overhead with SmolLM2-135M (slow)")
    ap.add_argument("--smollm2-repeats", type=int, default=2, help="timed repeats with SmolLM2 (no warm-up)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the preset's own value is 1)")
    ap.add_argument("--override", nargs="*", default=[],
                    help="tiny-arith config overrides, section.field=value (tests)")
    ap.add_argument("--no-write", action="store_true", help="print the table, do not write results/ (tests)")
    ap.add_argument("--only", choices=["vllm-step", "steps", "rating-call"],
                    help="measure only these rows (merged into the results file)")
    ap.add_argument("--before", action="store_true",
                    help="step rows: also time shared and sepo without the rating and prefill savings")
    ap.add_argument("--vllm-step", action="store_true", help="also measure the vLLM step row (needs vLLM)")
    ap.add_argument("--vllm-repeats", type=int, default=3, help="timed steps per engine in the vLLM step row")
    ap.add_argument("--vllm-preset", default="smollm2-arith", help="preset of the vLLM step row")
    ap.add_argument("--vllm-override", nargs="*", default=[], help="overrides of the vLLM step row's preset (tests)")
    args = ap.parse_args(argv)
    if args.only == "vllm-step":
        print(f"[perf] vLLM step vs transformers step ({args.vllm_preset}; its warm start is trained and cached the "
              "first time) ...", flush=True)
        r = vllm_step(args.vllm_repeats, args.vllm_preset, args.vllm_override)
        r["command"] = " ".join([Path(sys.executable).name, *(sys.argv if argv is None else [sys.argv[0], *argv])])
        print(f"[perf] {VLLM_METRIC} = {r['speedup']:.3f} (target >= {TARGET_VLLM_STEP}): "
              f"{'met' if r['speedup'] >= TARGET_VLLM_STEP else 'NOT met'}", flush=True)
        if args.no_write:
            from _results import markdown_table

            print(markdown_table(COLUMNS, [vllm_step_row(r)]))
            return {"rows": [vllm_step_row(r)], "vllm_step": r}
        print(merge_vllm_step(r))
        return {"rows": [vllm_step_row(r)], "vllm_step": r}

    import torch

    torch.set_num_threads(args.threads)
    overrides = [f"threads={args.threads}", *args.override]
    if args.only == "steps":
        return only_steps(args, overrides, argv)
    if args.only == "rating-call":
        r = smollm2_rating_call(args.smollm2_repeats)
        print(f"[perf] {RATING_METRIC} = {r['speedup']:.3f}; parsed ratings identical: {r['same_parsed_ratings']}",
              flush=True)
        command = " ".join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
        if not args.no_write:
            print(merge_rating_call(r, command))
        return {"rows": [rating_call_row(r)], "rating_call": r}
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    credits = ["ccpo", *[c for c in args.credits if c not in ("ccpo", "shared")]]

    print(f"[perf] building {len(credits) + 1} tiny-arith trainers ...", flush=True)
    trainers = build_trainers(credits, overrides=overrides)
    if args.before:
        trainers.update(build_before(overrides))
    ro = trainers["ccpo"].config.rollout
    solo_rows, joint_rows = ro.problems_per_step * ro.solo_samples, ro.problems_per_step * ro.group_size
    solo_note = f"{solo_rows} rows to the {joint_rows} joint rows"
    setup = (f"{ro.problems_per_step} problems x group {ro.group_size}, {ro.solo_samples} solo samples per problem, "
             f"Thinker {ro.thinker_max_new_tokens} / Solver {ro.solver_max_new_tokens} new tokens, sampled at "
             f"temperature {ro.temperature:g}")
    try:
        costs = step_costs(trainers, args.repeats)
        for n, r in costs["methods"].items():
            print(f"[perf] {n:10s} median step {r['median_step_s']:.3f}s ratio {r['ratio_over_shared']:.3f} "
                  f"phases {({k: round(v, 3) for k, v in r['median_phase_s'].items()})}", flush=True)
        print("[perf] rollout engine vs raw generate (tiny) ...", flush=True)
        roll = tiny_rollout(trainers["shared"], args.rollout_repeats)
    finally:
        for t in trainers.values():
            t.close()
    roll_smol = None
    if args.smollm2:
        print("[perf] rollout engine vs raw generate (smollm2-135m) ...", flush=True)
        roll_smol = smollm2_rollout(args.smollm2_repeats)
    env = ver = None
    if args.env_episodes > 0:
        print("[perf] env throughput ...", flush=True)
        env = env_throughput(args.env_episodes, args.data)
    if args.verifier_problems > 0:
        print("[perf] verifier throughput ...", flush=True)
        ver = verifier_throughput(args.verifier_problems, args.data)
    runtime = time.perf_counter() - t_start
    load_end = os.getloadavg()

    ccpo = costs["methods"]["ccpo"]["ratio_over_shared"]
    met = ccpo <= TARGET_CCPO
    rows = step_rows(costs)
    rows.append(rollout_row("rollout_over_raw_generate", roll, "tiny (warm-started, tiny-arith)"))
    if roll_smol:
        rows.append(rollout_row("rollout_over_raw_generate_smollm2", roll_smol, "smollm2-135m (smollm2-arith sizes)"))
    rows += throughput_rows(env, ver)
    vstep = None
    if args.vllm_step:
        print("[perf] vLLM step vs transformers step ...", flush=True)
        vstep = vllm_step(args.vllm_repeats, args.vllm_preset, args.vllm_override)
        vstep["command"] = "this run (--vllm-step)"
    elif not args.no_write:
        vstep = _previous_vllm_step()  # measured in .venv-vllm by --only vllm-step; kept as it was
    if vstep:
        rows.append(vllm_step_row(vstep))
    print(f"[perf] ccpo_step_over_shared = {ccpo:.3f} (target <= {TARGET_CCPO}): {'met' if met else 'NOT met'}")
    print(f"[perf] same problems per step index: {costs['same_problems']}; same roles updated: {costs['same_roles']}")

    shared_ph = costs["methods"]["shared"]["median_phase_s"]
    ccpo_ph = costs["methods"]["ccpo"]["median_phase_s"]
    notes = (
        f"One run, {runtime:.0f} s, torch threads {args.threads}, CPU only ({os.cpu_count()} cores). "
        f"1-min load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end"
        + (" (other work shared the machine, which slows every row)" if load_start[0] > 1.5 else "")
        + "; the ratios are measured inside this one run with the compared sides interleaved, so load hits both "
        "alike.\n\n"
        + step_note(costs, setup, args.repeats)
        + f" ccpo's collect phase is {ccpo_ph['collect'] / shared_ph['collect']:.2f}x shared's (the solo prompts add "
        f"{solo_note} of the Solver's generate call, {costs['methods']['ccpo']['mean_tokens'].get('solo', 0):.0f} tokens "
        f"per step), its update {ccpo_ph['update'] / shared_ph['update']:.2f}x.\n\n"
        "Rollout overhead: greedy decoding; collect_groups (fresh verifier per call, pool started before timing) "
        "vs transformers model.generate(do_sample=False) on the same left-padded prompt ids in the same chunks, "
        "max_new_tokens = the chunk's longest completion, the policy's EOS ids (the raw call runs as many decoding "
        "steps and keeps computing finished rows). 'in policy.generate' is the part of collect_groups spent inside "
        "the policy's generate; the rest is env, prompts, verification and bookkeeping. "
        f"{args.rollout_repeats} timed repeats after a warm-up, medians; greedy collect_groups reproduced its own "
        f"tokens across repeats: {roll['greedy_reproducible']}.\n\n"
        + (f"SmolLM2: {args.smollm2_repeats} timed run(s), no warm-up; policy.generate took "
           f"{roll_smol['generate_over_raw']:.2f}x raw model.generate's time (the policy drops rows that finished "
           "(EOS) from the batch; transformers keeps decoding them until the longest row ends).\n\n"
           if roll_smol else "")
        + "Throughput rows reuse benchmarks/env_throughput.py's episode loop and benchmarks/verifier_speed.py's "
        "workloads and runner at smaller sizes (single runs); see those benchmarks for the full tables."
        + (f"\n\n{vllm_step_note(vstep)}" if vstep else "")
    )
    result = {"rows": rows, "costs": costs, "rollout": roll, "rollout_smollm2": roll_smol, "env": env, "verifier": ver,
              "ccpo_target_met": met, "runtime_s": runtime}
    if args.no_write:
        from _results import markdown_table

        print(markdown_table(COLUMNS, rows))
        return result
    for r in costs["methods"].values():
        r.pop("tokens", None)
    table = write_results("performance", COLUMNS, rows, notes=notes,
                          extra={"settings": vars(args), "runtime_s": round(runtime, 1),
                                 "load_average_1m": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
                                 "ccpo_target": TARGET_CCPO, "ccpo_target_met": met,
                                 "step_costs": costs, "rollout": roll, "rollout_smollm2": roll_smol,
                                 "env": env, "verifier": ver, **({"vllm_step": vstep} if vstep else {})})
    print(table)
    return result


if __name__ == "__main__":
    main()
