"""Parity with TRL's ``GRPOTrainer`` (issue #20, item 1).

One batch (prompts of different lengths, completions of different lengths, sampling-time
log-probs set away from the current ones so that tokens clip on both sides, advantages of both
signs) goes through TRL's own ``GRPOTrainer._compute_loss`` and through thinksolve's
``accumulate_gradients`` (``TransformersPolicy.logprobs`` + ``optim/losses.py``), each on its
own copy of the same weights. Loss values and whole gradient vectors must agree for every
aggregation both implement (TRL's ``grpo``, ``bnpo``, ``dapo``, ``dr_grpo``, each at
``importance_sampling_level="token"`` against our ``grpo`` loss and at ``"sequence"`` against
our ``gspo`` loss). Where the two conventions differ, the test pins the difference to its exact
factor: empty rows (B vs B'), Dr. GRPO's L, micro-batches of different sizes, the sequence-level
clip metric, the std's ε. The advantages come from a real ``GRPOTrainer`` too: its
``_generate_and_score_completions`` generates with the tiny model and scores with a reward
function that returns chosen rewards. ``docs/training.md`` ("Against TRL's GRPOTrainer") lists
the mapping and every difference.

The tiny-model cases take a few seconds; the SmolLM2-135M ones (``llm``) a few more.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from dataclasses import dataclass

import pytest
import torch

pytest.importorskip("trl", reason="TRL is not installed (it is in the dev extra: pip install -e '.[dev]')")
datasets = pytest.importorskip("datasets", reason="TRL's GRPOTrainer needs the datasets package")

from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from agents import Completion  # noqa: E402
from agents.models import load_model  # noqa: E402
from agents.transformers_policy import TransformersPolicy, render_chat  # noqa: E402
from algorithms.config import OptimConfig  # noqa: E402
from algorithms.optim import estimators, losses  # noqa: E402
from algorithms.train.update import accumulate_gradients  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]

#: The gradient criterion of the issue.
MIN_COSINE, MAX_REL = 0.9999, 1e-4
#: TRL's aggregation -> ours (the loss at the token level is our ``grpo``; at the sequence level, ``gspo``).
AGG = {"grpo": "seq-mean-token-mean", "bnpo": "token-mean", "dapo": "token-mean", "dr_grpo": "seq-mean-token-sum-norm-trl"}
LEVEL_LOSS = {"token": "grpo", "sequence": "gspo"}
#: Clip epsilons per level (asymmetric, so that epsilon -> clip_low and epsilon_high -> clip_high is checked).
EPS = {"token": (0.2, 0.28), "sequence": (3e-4, 4e-4)}
TEMPERATURE = 0.7

QUESTIONS = ["What is 7 times 8?", "Halve forty-two.", "Name a prime."]
ANSWERS = ["56", "Seven times eight is \\boxed{56}.", "Half of 42 is \\boxed{21}.", "21",
           "2", "Two: \\boxed{2}"]
ADVANTAGES = [1.0, -0.5, 0.7, -1.2, 0.4, -0.9]
#: Per row, log s_i = mean_t(log π − log π_old): rows 0 and 4 clip high (A > 0, s > 1 + ε), rows 1 and 5
#: clip low (A < 0, s < 1 − ε) at the sequence level, rows 2 and 3 do not clip.
SHIFT = [0.1, -0.1, -0.05, 0.05, 0.1, -0.1]
NOISE = 0.3  # token-level spread of the log-ratio around SHIFT (clips tokens on both sides at ε = 0.2)
#: Micro-batches: as many rows each (with different token counts), and 1 row against 5.
SPLITS = {"equal": [[0, 3, 4], [1, 2, 5]], "unequal": [[0], [1, 2, 3, 4, 5]]}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@dataclass
class Batch:
    messages: list[list[dict[str, str]]]
    completions: list[Completion]  # token_ids, prompt_token_ids, logprobs = the old log-probs
    advantages: torch.Tensor
    pad_id: int

    @property
    def lengths(self) -> list[int]:
        return [len(c.token_ids) for c in self.completions]

    @property
    def width(self) -> int:
        return max(self.lengths)

    def trl_inputs(self, idx: list[int]) -> dict[str, torch.Tensor]:
        """TRL's training inputs for rows ``idx``: the whole batch padded as TRL pads a generation
        batch (prompts on the left, completions on the right), then those rows sliced out."""
        cs = self.completions
        P, C = max(len(c.prompt_token_ids) for c in cs), self.width
        out = {"prompt_ids": torch.full((len(cs), P), self.pad_id), "prompt_mask": torch.zeros(len(cs), P, dtype=torch.long),
               "completion_ids": torch.full((len(cs), C), self.pad_id),
               "completion_mask": torch.zeros(len(cs), C, dtype=torch.long), "old_per_token_logps": torch.zeros(len(cs), C)}
        for i, c in enumerate(cs):
            p, n = len(c.prompt_token_ids), len(c.token_ids)
            out["prompt_ids"][i, P - p:] = torch.tensor(c.prompt_token_ids)
            out["prompt_mask"][i, P - p:] = 1
            if n:
                out["completion_ids"][i, :n] = torch.tensor(c.token_ids)
                out["completion_mask"][i, :n] = 1
                out["old_per_token_logps"][i, :n] = torch.tensor(c.logprobs)
        out = {k: v[idx] for k, v in out.items()}
        out["advantages"] = self.advantages[idx]
        # the generation batch's valid tokens (what TRL's dapo divides by), not the micro-batch's
        out["num_items_in_batch"] = torch.tensor(float(sum(self.lengths)))
        return out


def make_batch(policy: TransformersPolicy, *, chat: bool = True, empty_row: bool = False) -> Batch:
    """Three prompts of different lengths (under the chat template, or plain text when ``chat`` is
    false), two completions each (lengths differ), old log-probs old = current − SHIFT_i +
    zero-mean noise (so log s_i = SHIFT_i exactly); ``empty_row`` adds a seventh row whose
    completion has no token."""
    tok = policy.tokenizer
    gen = torch.Generator().manual_seed(0)
    messages, completions = [], []
    for i, answer in enumerate(ANSWERS):
        m = [{"role": "user", "content": QUESTIONS[i // 2]}]
        messages.append(m)
        prompt = render_chat(tok, m) if chat else tok.encode(QUESTIONS[i // 2], add_special_tokens=False)
        completions.append(Completion(text=answer, token_ids=tok.encode(answer, add_special_tokens=False),
                                      temperature=TEMPERATURE, prompt_token_ids=prompt))
    with torch.no_grad():
        current = policy.logprobs(messages, completions)
    for c, lp, shift in zip(completions, current, SHIFT):
        noise = NOISE * torch.randn(lp.shape, generator=gen)
        c.logprobs = (lp - shift + noise - noise.mean()).tolist()
    adv = list(ADVANTAGES)
    if empty_row:
        messages.append(messages[0])
        completions.append(Completion(text="", token_ids=[], logprobs=[], temperature=TEMPERATURE,
                                      prompt_token_ids=list(completions[0].prompt_token_ids)))
        adv.append(0.8)
    assert len({len(c.prompt_token_ids) for c in completions}) == 3, "prompts of different lengths"
    assert len({len(c.token_ids) for c in completions if c.token_ids}) >= 4, "completions of different lengths"
    return Batch(messages, completions, torch.tensor(adv), int(tok.pad_token_id))


class Pair:
    """Two copies of one model: TRL's (the trainer patches its forward) and ours (in a policy)."""

    def __init__(self, model, tokenizer, out_dir, *, chat: bool = True) -> None:
        self.trl_model = model
        self.policy = TransformersPolicy(copy.deepcopy(model), tokenizer)
        self.tokenizer = tokenizer
        self.out_dir = out_dir
        self.chat = chat
        self.batch = make_batch(self.policy, chat=chat)
        self.dataset = datasets.Dataset.from_dict({"prompt": ["unused", "unused"]})

    @functools.cached_property
    def batch_with_empty(self) -> Batch:
        return make_batch(self.policy, chat=self.chat, empty_row=True)

    def trl(self, batch: Batch, loss_type: str, level: str, splits: list[list[int]], *,
            max_completion_length: int | None = None) -> tuple[list[float], list[torch.Tensor], dict]:
        """TRL's loss of each micro-batch in ``splits`` (gradient accumulation over len(splits)
        steps), the gradient each one adds, and the trainer's metrics."""
        k = len(splits)
        args = GRPOConfig(output_dir=str(self.out_dir), report_to="none", use_cpu=True, bf16=False, beta=0.0,
                          gradient_checkpointing=False, loss_type=loss_type, importance_sampling_level=level,
                          epsilon=EPS[level][0], epsilon_high=EPS[level][1], temperature=TEMPERATURE,
                          max_completion_length=max_completion_length or batch.width,
                          num_generations=2, per_device_train_batch_size=2, gradient_accumulation_steps=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = GRPOTrainer(model=self.trl_model, reward_funcs=_no_reward, args=args, train_dataset=self.dataset,
                                  processing_class=self.tokenizer)
        assert args.steps_per_generation == k  # dapo's normaliser reads it
        trainer.current_gradient_accumulation_steps = k  # what the training loop sets
        self.trl_model.train()
        values, grads = [], []
        for idx in splits:
            self.trl_model.zero_grad(set_to_none=True)
            loss = trainer._compute_loss(self.trl_model, batch.trl_inputs(idx))
            loss.backward()
            values.append(float(loss.detach()))
            grads.append(grad_vector(self.trl_model))
        self.trl_model.zero_grad(set_to_none=True)
        return values, grads, trainer._metrics["train"]

    def ours(self, batch: Batch, loss: str, agg: str, level: str, splits: list[list[int]],
             max_len: int | None = None) -> tuple[dict, torch.Tensor]:
        optim = OptimConfig(loss=loss, agg=agg, clip_low=EPS[level][0], clip_high=EPS[level][1])
        self.policy.model.zero_grad(set_to_none=True)
        self.policy.train()
        metrics = accumulate_gradients(self.policy, batch.messages, batch.completions, batch.advantages, optim,
                                       batches=splits, max_len=max_len)
        g = grad_vector(self.policy.model)
        self.policy.model.zero_grad(set_to_none=True)
        return metrics, g


def _no_reward(completions: list, **kwargs) -> list[float]:
    return [0.0] * len(completions)


def grad_vector(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().double()
                      for p in model.parameters() if p.requires_grad])


def compare(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, float]:
    """(relative difference ‖a − b‖/‖a‖, cosine) of two gradient vectors."""
    norm = reference.norm()
    assert norm > 0
    return float((reference - other).norm() / norm), float(reference.dot(other) / (norm * other.norm()))


#: (case, relative difference, cosine) of every comparison, printed at the end (pytest -s).
RESULTS: list[tuple[str, float, float]] = []


def check(case: str, ours: torch.Tensor, trl: torch.Tensor) -> None:
    rel, cos = compare(ours, trl)
    RESULTS.append((case, rel, cos))
    assert cos >= MIN_COSINE and rel <= MAX_REL, f"{case}: cosine {cos:.7f}, relative difference {rel:.2e}"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    for case, rel, cos in RESULTS:
        print(f"{case:60s} relative difference {rel:.2e}  1 − cosine {1 - cos:.1e}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Pair:
    model, tok = load_model("tiny")
    return Pair(model, tok, tmp_path_factory.mktemp("trl-tiny"))


#: SmolLM2's compared parameters: the last decoder layers and the final norm (see :func:`smollm2`).
SMOLLM2_TRAINED_LAYERS = 4


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Pair:
    """SmolLM2-135M-Instruct, its prompts as plain text (the chat template's system prompt would
    triple the tokens). So that a case takes seconds on two shared CPU cores, the backward stops
    early: the (tied) embedding and LM head and the first decoder layers are frozen, and the
    gradient compared is that of the last ``SMOLLM2_TRAINED_LAYERS`` layers and the final norm,
    through TRL's fused log-prob head and ours (the tiny model's cases compare every parameter,
    the tied embedding included)."""
    try:
        model, tok = load_model("smollm2-135m")
    except (ModuleNotFoundError, OSError) as e:  # the GGUF package or its converted folder is missing
        pytest.skip(f"smollm2-135m is not available here: {e}")
    first = model.config.num_hidden_layers - SMOLLM2_TRAINED_LAYERS
    for name, p in model.named_parameters():
        layer = name.split(".")[2] if name.startswith("model.layers.") else None
        p.requires_grad_(name.startswith("model.norm.") or (layer is not None and int(layer) >= first))
    assert not model.get_output_embeddings().weight.requires_grad
    return Pair(model, tok, tmp_path_factory.mktemp("trl-smollm2"), chat=False)


def seq_clipped(level: str) -> tuple[list[int], list[int]]:
    """Rows whose sequence ratio s_i = exp(SHIFT_i) clips low (A < 0) and high (A > 0)."""
    lo, hi = EPS[level]
    low = [i for i, (s, a) in enumerate(zip(SHIFT, ADVANTAGES)) if a < 0 and math.exp(s) < 1 - lo]
    high = [i for i, (s, a) in enumerate(zip(SHIFT, ADVANTAGES)) if a > 0 and math.exp(s) > 1 + hi]
    return low, high


# --------------------------------------------------------------------------- one batch, every aggregation


def same_loss_and_gradient(pair: Pair, loss_type: str, level: str, name: str, split: str | None = None) -> None:
    """One batch through both; ``split`` (only where the conventions agree for it) makes it two
    micro-batches, gradient-accumulated in both."""
    batch = pair.batch
    splits = SPLITS[split] if split else [list(range(len(batch.completions)))]
    trl_loss, trl_grads, trl_metrics = pair.trl(batch, loss_type, level, splits)
    metrics, ours = pair.ours(batch, LEVEL_LOSS[level], AGG[loss_type], level, splits)
    assert sum(trl_loss) == pytest.approx(metrics["loss"], rel=1e-5, abs=5e-6)  # float32 log-probs, O(1) terms
    check(f"{name} {loss_type}/{level}" + (f" {split} micro-batches" if split else ""), ours, sum(trl_grads))
    # clipping is active on both sides, in both implementations
    assert metrics["clip_frac_low"] > 0 and metrics["clip_frac_high"] > 0
    assert max(trl_metrics["clip_ratio/low_mean"]) > 0 and max(trl_metrics["clip_ratio/high_mean"]) > 0
    if split:
        return
    if level == "token":  # the same share of tokens
        assert trl_metrics["clip_ratio/low_mean"][-1] == pytest.approx(metrics["clip_frac_low"], abs=1e-6)
        assert trl_metrics["clip_ratio/high_mean"][-1] == pytest.approx(metrics["clip_frac_high"], abs=1e-6)
    else:  # pinned: TRL counts clipped sequences, ours the tokens of clipped sequences
        n = batch.lengths
        low, high = seq_clipped(level)
        assert low and high and len(low) + len(high) < len(n)
        assert trl_metrics["clip_ratio/low_mean"][-1] == pytest.approx(len(low) / len(n), abs=1e-6)
        assert trl_metrics["clip_ratio/high_mean"][-1] == pytest.approx(len(high) / len(n), abs=1e-6)
        assert metrics["clip_frac_low"] == pytest.approx(sum(n[i] for i in low) / sum(n), abs=1e-6)
        assert metrics["clip_frac_high"] == pytest.approx(sum(n[i] for i in high) / sum(n), abs=1e-6)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_tiny_same_loss_and_gradient(tiny, loss_type, level):
    same_loss_and_gradient(tiny, loss_type, level, "tiny")


@pytest.mark.llm
@pytest.mark.parametrize(("loss_type", "level", "split"), [("grpo", "token", None), ("bnpo", "token", None),
                                                           ("dapo", "token", "unequal"), ("dr_grpo", "token", None),
                                                           ("grpo", "sequence", None)])
def test_smollm2_same_loss_and_gradient(smollm2, loss_type, level, split):
    """SmolLM2-135M; its ``dapo`` case in two micro-batches of 1 and 5 rows (``dapo`` agrees
    under any split, see :func:`test_micro_batches`)."""
    same_loss_and_gradient(smollm2, loss_type, level, "smollm2", split)


# --------------------------------------------------------------------------- pinned differences


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_empty_row_counts_in_trl_but_not_in_ours(tiny, loss_type):
    """A completion with no valid token (TRL: ``mask_truncated_completions``): TRL's ``grpo`` and
    ``dr_grpo`` divide by all B rows, ours by the B' non-empty ones, so TRL's = ours × B'/B; the
    token-normalised ``bnpo``/``dapo`` agree."""
    batch = tiny.batch_with_empty
    B = len(batch.completions)
    B_ = sum(1 for n in batch.lengths if n)
    assert B_ == B - 1
    factor = B_ / B if loss_type in ("grpo", "dr_grpo") else 1.0
    trl_loss, trl_grads, _ = tiny.trl(batch, loss_type, "token", [list(range(B))])
    metrics, ours = tiny.ours(batch, "grpo", AGG[loss_type], "token", [list(range(B))])
    assert trl_loss[0] == pytest.approx(metrics["loss"] * factor, rel=1e-5)
    check(f"tiny {loss_type} with an empty row, ours × {factor:.4f}", ours * factor, trl_grads[0])
    if factor != 1.0:
        assert compare(ours, trl_grads[0])[0] > 0.1  # unscaled they really differ


def test_dr_grpo_length_is_max_completion_length_in_trl_longest_completion_in_ours(tiny):
    """TRL's ``dr_grpo`` divides by ``max_completion_length``; ours by the longest completion of
    the batch (``max_len`` = the padded width in ``accumulate_gradients``): TRL's = ours × width / L."""
    batch = tiny.batch
    L = 3 * batch.width
    everything = [list(range(len(batch.completions)))]
    trl_loss, trl_grads, _ = tiny.trl(batch, "dr_grpo", "token", everything, max_completion_length=L)
    metrics, ours = tiny.ours(batch, "grpo", AGG["dr_grpo"], "token", everything)
    factor = batch.width / L
    assert trl_loss[0] == pytest.approx(metrics["loss"] * factor, rel=1e-5)
    check("tiny dr_grpo max_completion_length = 3·width, ours × 1/3", ours * factor, trl_grads[0])
    # the trainer passes the role's generation budget as max_len: then the two agree as they are
    metrics, fixed = tiny.ours(batch, "grpo", AGG["dr_grpo"], "token", everything, max_len=L)
    assert trl_loss[0] == pytest.approx(metrics["loss"], rel=1e-5)
    check("tiny dr_grpo, ours with max_len = max_completion_length", fixed, trl_grads[0])


@pytest.mark.parametrize("split", ["equal", "unequal"])
@pytest.mark.parametrize(("loss_type", "level"), [("grpo", "token"), ("bnpo", "token"), ("dapo", "token"),
                                                  ("dr_grpo", "token"), ("grpo", "sequence")])
def test_micro_batches(tiny, loss_type, level, split):
    """Ours weights micro-batch j's aggregate by its share w_j of the whole batch's
    (``micro_batch_share``); TRL divides it by the k accumulation steps (``dapo``: by the
    generation batch's token count, times k / steps_per_generation = 1). So ours = Σ_j k·w_j·g_j
    with g_j TRL's gradient of micro-batch j, and k·w_j = 1 (plain gradient accumulation agrees)
    exactly for ``dapo`` always and for ``grpo``/``dr_grpo`` when the micro-batches hold as many
    rows; ``bnpo`` needs as many tokens."""
    batch, splits = tiny.batch, SPLITS[split]
    k = len(splits)
    trl_loss, trl_grads, _ = tiny.trl(batch, loss_type, level, splits)
    metrics, ours = tiny.ours(batch, LEVEL_LOSS[level], AGG[loss_type], level, splits)
    n = torch.tensor(batch.lengths, dtype=torch.float64)
    if loss_type == "dapo":
        weights = [1.0] * k
    else:
        agg = AGG[loss_type]
        weights = [k * losses.micro_batch_share(agg, (torch.arange(batch.width)[None] < n[idx, None]).float(),
                                                int(n.sum()), len(n)) for idx in splits]
        if agg == "token-mean":
            assert weights == pytest.approx([k * float(n[idx].sum() / n.sum()) for idx in splits])
        else:  # the share of rows
            assert weights == pytest.approx([k * len(idx) / len(n) for idx in splits])
    expected = sum(w * g for w, g in zip(weights, trl_grads))
    assert metrics["loss"] == pytest.approx(sum(w * v for w, v in zip(weights, trl_loss)), rel=1e-5, abs=1e-7)
    check(f"tiny {loss_type}/{level} {split} micro-batches, Σ k·w_j·g_j", ours, expected)
    plain = compare(ours, sum(trl_grads))[0]
    if all(w == pytest.approx(1.0) for w in weights):
        assert plain <= MAX_REL  # plain gradient accumulation is the same gradient
        if loss_type in ("grpo", "dr_grpo"):
            assert split == "equal"
    else:
        assert plain > 1e-2, "the micro-batch weights differ, so must the plain accumulated gradients"
        assert loss_type == "bnpo" or split == "unequal"


def test_trl_defaults_that_differ():
    """The settings these tests pass explicitly because TRL's defaults differ: bf16 autocast on
    (its forward then runs in bfloat16 even on CPU), ε = 0.2 whatever the level (GSPO's paper and
    our ``gspo`` use 3e-4/4e-4), ``epsilon_high`` unset (= ``epsilon``); and ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = GRPOConfig(output_dir="unused", report_to="none", use_cpu=True, importance_sampling_level="sequence")
    assert args.bf16 is True
    assert (args.epsilon, args.epsilon_high, args.scale_rewards, args.loss_type) == (0.2, None, "group", "dapo")
    assert args.temperature == 1.0
    assert (OptimConfig().clip_low, OptimConfig().clip_high) == (3e-4, 4e-4)


# --------------------------------------------------------------------------- advantages


#: Four groups of four: two ties, an all-equal group, ties with a third value.
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.7, 0.7, 0.7, 0.7, 2.0, 2.0, -1.0, 0.5, 0.1, 0.1, 0.1, 0.3]


def _chosen_reward(completions: list, reward: list[float], **kwargs) -> list[float]:
    return list(reward)  # the dataset column `reward` of each rollout


def trl_advantages(tiny: Pair, rewards: list[float], group: int, scale: str) -> torch.Tensor:
    """The advantages a real GRPOTrainer computes: it generates ``group`` completions per prompt
    with the tiny model and scores each with its row's chosen reward."""
    args = GRPOConfig(output_dir=str(tiny.out_dir), report_to="none", use_cpu=True, bf16=False, beta=0.0,
                      gradient_checkpointing=False, per_device_train_batch_size=len(rewards), num_generations=group,
                      max_completion_length=2, scale_rewards=scale)
    prompts = [f"question {i}" for i in range(len(rewards) // group)]
    dataset = datasets.Dataset.from_dict({"prompt": prompts, "reward": [0.0] * len(prompts)})
    model = copy.deepcopy(tiny.policy.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=model, reward_funcs=_chosen_reward, args=args, train_dataset=dataset,
                              processing_class=tiny.tokenizer)
        model.train()
        # the rows as TRL's sampler yields them: each prompt `group` times in a row
        out = trainer._generate_and_score_completions([{"prompt": prompts[i // group], "reward": r}
                                                       for i, r in enumerate(rewards)])
    return out["advantages"].double()


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_match_trl_scale_rewards(tiny, scale):
    """``scale_rewards`` = our ``grpo`` estimator's ``scale`` with ``eps=1e-4``: Bessel std in
    both, the batch std over all rewards (not the centred ones); ``"none"`` is ``dr_grpo``."""
    index = [i // 4 for i in range(len(REWARDS))]
    trl = trl_advantages(tiny, REWARDS, 4, scale)
    ours = estimators.get("grpo")(REWARDS, index, scale=scale, eps=1e-4).double()
    assert torch.allclose(trl, ours, rtol=1e-6, atol=1e-6)
    assert (trl[4:8] == 0).all() and (ours[4:8] == 0).all()  # the all-equal group
    r = torch.tensor(REWARDS, dtype=torch.float64).view(-1, 4)
    centred = (r - r.mean(1, keepdim=True)).flatten()
    if scale == "none":
        assert torch.allclose(trl, estimators.get("dr_grpo")(REWARDS, index).double(), atol=1e-6)
        assert torch.allclose(trl, centred, atol=1e-6)
    else:
        std = r.std(1, unbiased=True).repeat_interleave(4) if scale == "group" else torch.tensor(REWARDS).double().std()
        assert torch.allclose(trl, centred / (std + 1e-4), atol=1e-6)  # Bessel-corrected, ε = 1e-4 added to the std
        # pinned: our default ε = 1e-6 gives TRL's times (s + 1e-4)/(s + 1e-6)
        default = estimators.get("grpo")(REWARDS, index, scale=scale).double()
        assert torch.allclose(default, trl * (std + 1e-4) / (std + 1e-6), rtol=1e-5, atol=1e-7)
        assert not torch.allclose(default, trl, rtol=1e-5, atol=1e-7)


def test_all_equal_group_trl_round_off(tiny):
    """Pinned: TRL works in float32 and adds 1e-4 to the std, so a group of equal rewards whose
    float32 mean is not exactly the reward (three times 0.9) gets |A| of about 6e-4 instead of 0;
    ours is exactly 0 for any all-equal group (and matches TRL elsewhere)."""
    rewards = [0.9, 0.9, 0.9, 1.0, 0.0, 0.5]
    trl = trl_advantages(tiny, rewards, 3, "group")
    ours = estimators.get("grpo")(rewards, [0, 0, 0, 1, 1, 1], eps=1e-4).double()
    assert (ours[:3] == 0).all()
    r = torch.full((3,), 0.9, dtype=torch.float32)
    d = r - r.mean()  # float32 round-off of the group mean: about 6e-8, not 0
    assert (d != 0).all()
    assert trl[:3].abs().min() > 1e-4
    assert torch.allclose(trl[:3], (d / (r.std() + 1e-4)).double(), rtol=1e-3)
    assert torch.allclose(trl[3:], ours[3:], atol=1e-6)
