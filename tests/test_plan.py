"""The memory plan (``algorithms.team.memory``): exact parameter counts, the predicted state of a
run against the tensors a real trainer holds, the layouts' invariants, the refusal of a run that
cannot fit, the GPU presets and ``thinksolve plan``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Olmo3Config, Qwen2Config, Qwen3Config

from agents import build_tiny_model, load_model
from algorithms import credit
from algorithms.cli import main
from algorithms.config import GPU_PRESETS, OPTIMIZERS, PRESETS, ConfigError, apply_overrides, preset
from algorithms.team.memory import (
    HEADROOM,
    LAYOUTS,
    MODELS,
    GiB,
    architecture,
    check_fits,
    layout_config,
    measured_state_bytes,
    memory_plan,
    min_gpus,
    preset_gpus,
    state_bytes,
)
from algorithms.train import Trainer


def _token_parity(groups):
    # a random tiny model never solves a problem: reward the parity of its tokens so that
    # every update has advantages, gradients and an optimizer step
    def share(role):
        return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                         for g in groups for e in g.episodes])

    return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}


@pytest.fixture
def parity_credit(credit_registry_restored):
    """The parity credit method, registered for one test only."""
    credit.register("plan_token_parity")(_token_parity)


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- parameter counts


def test_parameter_counts_are_exact_for_tiny():
    model, _ = build_tiny_model(0)
    arch = architecture("tiny")
    assert arch.params == _numel(model)
    assert dataclasses.replace(arch, counted=None).params == _numel(model)  # the formula agrees
    # the warm start's resized tiny model (warm_start.model_config), head_dim following hidden_size
    size = {"hidden_size": 256, "num_hidden_layers": 4}
    resized, _ = build_tiny_model(0, head_dim=64, **size)
    assert architecture("tiny", size).params == _numel(resized) != _numel(model)


def test_parameter_counts_are_exact_for_smollm2():
    try:
        model, _ = load_model("smollm2-135m")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"smollm2-135m is not available here: {e}")
    arch = architecture("smollm2-135m")
    assert arch.params == _numel(model) == dataclasses.replace(arch, counted=None).params
    assert (arch.hidden, arch.layers, arch.heads, arch.kv_heads, arch.vocab, arch.tied) == (576, 30, 9, 3, 49152, True)


def _hf_config(a):
    kw = dict(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
              num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.head_dim, vocab_size=a.vocab,
              tie_word_embeddings=a.tied)
    if a.qk_norm == "full":
        return Olmo3Config(**kw)
    if a.qk_norm == "head":
        return Qwen3Config(**kw)
    return Qwen2Config(**kw) if a.attention_bias == "qkv" else LlamaConfig(**kw)


@pytest.mark.parametrize("name", list(MODELS))
def test_the_table_of_models_counts_what_transformers_builds(name, tmp_path):
    a = MODELS[name]
    cfg = _hf_config(a)
    with torch.device("meta"):
        assert a.params == _numel(AutoModelForCausalLM.from_config(cfg))
    # the same numbers read back from a local config.json (the path taken for local directories)
    cfg.save_pretrained(tmp_path)
    local = architecture(str(tmp_path))
    assert dataclasses.replace(local, source="", counted=None) == dataclasses.replace(a, source="")
    assert local.counted == a.params


def test_known_sizes():
    assert round(MODELS["Qwen/Qwen2.5-7B-Instruct"].params / 1e9, 2) == 7.62
    assert round(MODELS["meta-llama/Llama-3.1-8B-Instruct"].params / 1e9, 2) == 8.03
    olmo = MODELS["allenai/Olmo-3-7B-Instruct"]
    # sliding-window layers hold at most their window in the KV cache
    assert olmo.kv_bytes(10240, 2) < dataclasses.replace(olmo, sliding_layers=0).kv_bytes(10240, 2)
    assert olmo.kv_bytes(4096, 2) == dataclasses.replace(olmo, sliding_layers=0).kv_bytes(4096, 2)


def test_an_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot plan the memory of model 'nowhere'"):
        architecture("nowhere")


# --------------------------------------------------------------------------- predicted vs measured


class MeasuringTrainer(Trainer):
    """A trainer that reads its own state right after every optimizer step (gradients exist then;
    the update frees them when it ends)."""

    def __init__(self, *args, **kwargs) -> None:
        self.measured: list[tuple[str, dict]] = []
        super().__init__(*args, **kwargs)

    def update(self, role, prompts, completions, advantages):
        hook = self.optimizers[role].register_step_post_hook(
            lambda *_: self.measured.append((role, measured_state_bytes(self.policies, self.optimizers))))
        try:
            return super().update(role, prompts, completions, advantages)
        finally:
            hook.remove()


def _tiny(out, sharing):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=20,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "credit.name=plan_token_parity", "optim.lr=1e-3", "schedule.period=1",
        "optim.ppo_epochs=1", "tensorboard=false", "steps=2", f"model.sharing={sharing}", "model.lora_rank=4",
        "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1", f"out={out}"])  # (a small last evaluation)


@pytest.mark.parametrize("sharing", ["separate", "shared", "lora"])
@pytest.mark.usefixtures("parity_credit")
def test_predicted_state_matches_a_real_trainer(tmp_path, sharing):
    cfg = _tiny(tmp_path, sharing)
    with MeasuringTrainer(cfg, log=None) as t:
        t.train()
        roles = [role for role, _ in t.measured]
        assert roles == ["thinker_0", "solver_0"]  # alternating every step
        first, last = t.measured[0][1], t.measured[-1][1]
    predicted = state_bytes(cfg, world=1)
    # parameters: every distinct tensor once (shared: one model; lora: the base and two adapters)
    assert predicted["params"] == first["params"] == last["params"]
    # gradients: the first update's role only (the other role has never had any)
    assert first["grads"] == pytest.approx(predicted["grads"], rel=0.1)
    assert first["grads"] > 0
    # optimizer state: by the second update both roles' AdamW hold exp_avg and exp_avg_sq
    assert last["optimizer"] == pytest.approx(predicted["optimizer"], rel=0.1)
    assert first["optimizer"] == pytest.approx(predicted["optimizer"] / 2, rel=0.1)
    # a CPU run holds everything in CPU memory, predicted and measured
    for key in ("params", "grads", "optimizer"):
        assert predicted[f"{key}_cpu"] == predicted[key] and last[f"{key}_cpu"] == last[key]
    if sharing == "lora":
        adapter = architecture("tiny").lora_params(4) * 4
        assert first["grads"] == adapter
        # peft trains the active adapter only: the other one is frozen until its role's turn
        assert last["params_trainable"] == adapter
        assert last["params_frozen"] == architecture("tiny").params * 4 + adapter
    else:
        assert last["params_frozen"] == 0


# --------------------------------------------------------------------------- layouts


def _state_total(cfg, world):
    return state_bytes(cfg, world)["total"]


def test_fsdp_splits_the_state_across_the_gpus():
    cfg = apply_overrides(preset("qwen2.5-1.5b-math"), ["model.dtype=float32"])
    ddp, fsdp = layout_config(cfg, "ddp"), layout_config(cfg, "fsdp")
    for gpus in (2, 4, 8):
        assert _state_total(fsdp, gpus) == pytest.approx(_state_total(ddp, gpus) / gpus, rel=1e-6)
    # bfloat16: fsdp keeps float32 master weights, gradients and AdamW state, ddp keeps bfloat16 ones
    bf16 = preset("qwen2.5-1.5b-math")
    assert _state_total(layout_config(bf16, "fsdp"), 4) * 4 == pytest.approx(2 * _state_total(layout_config(bf16, "ddp"), 4),
                                                                              rel=1e-6)
    # one process trains plainly: fsdp is ddp there
    assert state_bytes(layout_config(bf16, "fsdp"), 1) == state_bytes(layout_config(bf16, "ddp"), 1)
    # hybrid sharding: two replicas of 4-way shards hold what 4-way fsdp holds
    hsdp = apply_overrides(layout_config(bf16, "fsdp"), ["parallel.replicas=2"])
    assert state_bytes(hsdp, 8) == state_bytes(layout_config(bf16, "fsdp"), 4)


def test_the_plan_table_invariants():
    cfg = preset("qwen2.5-7b-math")
    plan = memory_plan(cfg, 8, 80)
    assert plan["own"] == "fsdp+offload" and set(plan["layouts"]) == set(LAYOUTS)
    ddp, fsdp, off = (plan["layouts"][k] for k in ("ddp", "fsdp", "fsdp+offload"))
    state = ("weights", "gradients", "optimizer state")
    # fsdp on 8 GPUs: the float32 state of the updated role is an eighth of ddp's bfloat16 one, twice over
    assert fsdp["parts"]["optimizer state"] < ddp["parts"]["optimizer state"] / 2
    # offload moves the state off the GPU, into CPU memory
    assert all(off["parts"][k] == 0 for k in (*state, "optimizer step"))
    assert off["cpu_per_node"] > fsdp["cpu_per_node"] > 0
    # what every rank holds whole does not depend on the layout's sharding
    for part in ("activations", "vLLM weights", "vLLM activations", "vLLM KV cache"):
        assert ddp["parts"][part] == fsdp["parts"][part] == off["parts"][part] > 0
    assert ddp["parts"]["gathered layers"] == 0 < fsdp["parts"]["gathered layers"]
    assert off["total"] < fsdp["total"] < ddp["total"]
    assert plan["usable"] == int(80 * GiB * (1 - HEADROOM))
    assert (ddp["fits"], fsdp["fits"], off["fits"]) == (False, False, True)
    # transformers rollouts under fsdp decode from a gathered copy instead of vLLM engines
    tf = memory_plan(apply_overrides(cfg, ["rollout.engine=transformers"]), 8, 80)["layouts"]
    assert tf["fsdp"]["parts"]["generation copy"] == MODELS["Qwen/Qwen2.5-7B-Instruct"].params * 2
    assert tf["ddp"]["parts"]["generation copy"] == 0 < tf["ddp"]["parts"]["generation cache"]
    assert tf["fsdp"]["parts"]["vLLM weights"] == 0
    # gradient checkpointing keeps one tensor per layer instead of every layer's activations
    nockpt = memory_plan(apply_overrides(cfg, ["model.gradient_checkpointing=false"]), 8, 80)["layouts"]["fsdp"]
    assert nockpt["parts"]["activations"] > 2 * fsdp["parts"]["activations"]


def test_the_vllm_share_of_the_gpu():
    cfg = preset("qwen2.5-1.5b-math")
    col = memory_plan(cfg, 1, 80)["layouts"]["fsdp"]
    assert 0 < col["vllm_gpu_memory_utilization"] < 1
    tight = memory_plan(apply_overrides(cfg, ['rollout.vllm={"gpu_memory_utilization": 0.03}']), 1, 80)["layouts"]["fsdp"]
    assert not tight["fits"] and "less KV cache than one sequence" in tight["notes"][0]


def test_check_fits_refuses_with_the_numbers_and_what_would_fit():
    cfg = apply_overrides(preset("qwen2.5-7b-math"), ["parallel.strategy=ddp", "parallel.offload=false"])
    with pytest.raises(ConfigError) as e:
        check_fits(cfg, 1, 80 * GiB)
    msg = str(e.value)
    assert msg.startswith("the run does not fit: ddp on 1 GPU of 80.0 GiB needs ")
    for part in ("weights 14.2 GiB", "gradients 14.2 GiB", "optimizer state 28.4 GiB", "activations", "vLLM weights 28.4 GiB"):
        assert part in msg
    assert "72.0 GiB is usable" in msg
    assert "parallel.strategy=fsdp on 16 GPUs" in msg and "parallel.strategy=fsdp parallel.offload=true on 2 GPUs" in msg
    assert "model.sharing=lora on 1 GPU" in msg
    n = min_gpus(cfg, 80)
    assert n is None  # ddp holds both 7B models whole on every GPU: no count fits
    own = preset("qwen2.5-7b-math")
    n = min_gpus(own, 80)
    assert check_fits(own, n, 80 * GiB)["fits"]
    with pytest.raises(ConfigError, match="on one process: plain training"):
        check_fits(own, n // 2, 80 * GiB)


# --------------------------------------------------------------------------- presets


H100_BYTES = 85_520_809_984  # what torch reports as an H100 80GB's total memory (79.6 GiB)


@pytest.mark.parametrize("name", list(GPU_PRESETS))
def test_gpu_presets_are_the_paper_recipe_and_fit_one_node(name):
    cfg = preset(name)
    assert (cfg.rollout.problems_per_step, cfg.rollout.group_size) == (192, 16)
    r = cfg.rollout
    assert (r.max_prompt_tokens, r.solver_max_new_tokens, r.thinker_max_new_tokens) == (4096, 6144, 4096)
    assert (cfg.model.dtype, cfg.model.gradient_checkpointing, r.engine, cfg.parallel.strategy) == (
        "bfloat16", True, "vllm", "fsdp")
    assert (cfg.schedule.mode, cfg.schedule.period, cfg.optim.loss, cfg.optim.lr) == ("alternate", 10, "gspo", 1e-6)
    assert cfg.train_data == "../shared/data/math/math_train.jsonl" and cfg.eval_data == "../shared/data/math/math500.jsonl"
    grpo = preset(f"{name}-grpo")
    assert {k: getattr(grpo.optim, k) for k in OPTIMIZERS["grpo"]} == OPTIMIZERS["grpo"]
    assert dataclasses.replace(grpo, optim=cfg.optim, out=cfg.out) == cfg
    n = preset_gpus(name)
    assert n is not None and n <= 8, f"{name} needs {n} GPUs"
    assert check_fits(cfg, n, H100_BYTES)["fits"]  # also at the memory an H100 reports
    assert preset_gpus(f"{name}-grpo") == n


def test_the_mixed_preset_plans_both_models():
    cfg = preset("olmo3-7b-qwen2.5-1.5b-math")
    assert (cfg.model.name, cfg.model.solver_name) == ("allenai/Olmo-3-7B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct")
    mixed = memory_plan(cfg, 8, 80)["layouts"]["fsdp"]
    same = memory_plan(apply_overrides(cfg, ["model.solver_name=none"]), 8, 80)["layouts"]["fsdp"]
    assert mixed["parts"]["vLLM weights"] < same["parts"]["vLLM weights"]
    # the peak is the Olmo Thinker's update (the idle Solver's weights and AdamW state are in CPU memory)
    assert mixed["parts"]["weights"] == same["parts"]["weights"] and mixed["cpu_per_node"] < same["cpu_per_node"]


# --------------------------------------------------------------------------- the command


def test_thinksolve_plan_prints_the_table_and_every_preset(capsys):
    assert main(["plan", "--preset", "qwen2.5-7b-math", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "| part | ddp | fsdp | fsdp+offload (own) | lora |" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    for part in ("weights", "gradients", "optimizer state", "activations", "vLLM KV cache", "**total**", "CPU RAM per node"):
        assert part in rows
    assert rows["fits in 72.0"].split("|")[2:6] == [" no ", " no ", " yes ", " yes "]
    for name in PRESETS:
        assert name in rows, f"no row for preset {name}"
    assert rows["qwen2.5-7b-math"].rstrip(" |").endswith(str(preset_gpus("qwen2.5-7b-math")))
    assert "the smallest count that fits: 2 GPU(s)" in out


def test_thinksolve_plan_errors(capsys):
    assert main(["plan", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["plan", "--preset", "tiny-arith", "optim.lrr=1"]) == 2
    assert "unknown config field 'optim.lrr'" in capsys.readouterr().err
    assert main(["plan"]) == 0  # the presets' table alone
    assert "| tiny-arith |" in capsys.readouterr().out
