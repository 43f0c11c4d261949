import os
import random

import numpy as np
import pytest
import torch

from algorithms.runs import CheckpointError, capture_rng, config_diff, load_checkpoint, restore_rng, save_checkpoint


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_round_trip_restores_weights_optimizer_rng_and_state(tmp_path):
    m = _model(0)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.ones(2, 4)).sum().backward()
    opt.step()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    rng = capture_rng()
    expected = _draws()
    save_checkpoint(tmp_path / "ck", step=7, weights={"thinker_0": m.state_dict()},
                    optimizers={"thinker_0": opt.state_dict()}, credit_state={"mu": 0.25, "count": 12},
                    config={"lr": 1e-3, "credit": {"name": "ccpo"}}, rng=rng)
    _draws()  # move the RNGs on
    ck = load_checkpoint(tmp_path / "ck")
    restore_rng(ck["rng"])
    assert _draws() == expected
    assert ck["step"] == 7 and ck["credit_state"] == {"mu": 0.25, "count": 12}
    assert ck["config"]["credit"]["name"] == "ccpo"
    m2 = _model(1)
    m2.load_state_dict(ck["weights"]["thinker_0"])
    assert torch.equal(m2.weight, m.weight)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    opt2.load_state_dict(ck["optimizers"]["thinker_0"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    good = _model(0).state_dict()
    save_checkpoint(tmp_path / "ck", step=1, weights={"solver_0": good})
    with pytest.raises(TypeError):
        # A value that cannot be serialised fails half-way through the write.
        save_checkpoint(tmp_path / "ck", step=2, weights={"solver_0": _model(1).state_dict()}, config={"bad": object()})
    ck = load_checkpoint(tmp_path / "ck")
    assert ck["step"] == 1 and torch.equal(ck["weights"]["solver_0"]["weight"], good["weight"])
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # no temporary directory left behind


def test_crash_between_renames_falls_back_to_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ck", step=3, weights={"solver_0": _model(0).state_dict()})
    os.replace(tmp_path / "ck", tmp_path / "ck.old")  # what a crash after the first rename leaves
    assert load_checkpoint(tmp_path / "ck")["step"] == 3
    save_checkpoint(tmp_path / "ck", step=4, weights={"solver_0": _model(0).state_dict()})
    assert load_checkpoint(tmp_path / "ck")["step"] == 4 and not (tmp_path / "ck.old").exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_config_diff_names_fields():
    diff = config_diff({"lr": 1e-6, "credit": {"lam": 0.2}, "seed": 1},
                       {"lr": 1e-5, "credit": {"lam": 0.2}, "steps": 4})
    assert diff == ["lr: 1e-06 -> 1e-05", "seed: 1 -> '<absent>'", "steps: '<absent>' -> 4"]


_SAVER = r'''
import sys, torch
from algorithms.runs import save_checkpoint
k = 0
while True:
    k += 1
    w = {"w": torch.full((1_000_000,), float(k)), "v": torch.full((500_000,), float(k))}
    save_checkpoint(sys.argv[1], step=k, weights={"thinker_0": w, "solver_0": w}, optimizers={"thinker_0": {"k": k}},
                    config={"k": k})
    print(k, flush=True)
'''


@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_a_process_killed_while_saving_leaves_a_complete_checkpoint(tmp_path, delay):
    """SIGKILL at an arbitrary moment of a save loop: the checkpoint on disk is always a whole one."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ck")], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert proc.stdout.readline().strip() == "1"  # one save finished
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ck = load_checkpoint(tmp_path / "ck")
    k = ck["step"]
    assert k >= 1 and ck["config"] == {"k": k} and ck["optimizers"]["thinker_0"] == {"k": k}
    for role in ("thinker_0", "solver_0"):
        assert torch.all(ck["weights"][role]["w"] == k) and torch.all(ck["weights"][role]["v"] == k)


def _saved(tmp_path):
    m = _model(0)
    save_checkpoint(tmp_path / "ck", step=5, weights={"thinker_0": m.state_dict()},
                    optimizers={"thinker_0": torch.optim.AdamW(m.parameters()).state_dict()})
    return tmp_path / "ck"


def test_a_flipped_weight_byte_is_refused_on_load(tmp_path):
    ck = _saved(tmp_path)
    f = ck / "weights" / "thinker_0.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight: the file still parses, the value is silently different
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"weights/thinker_0.safetensors does not match its checksum"):
        load_checkpoint(ck)


def test_a_damaged_optimizer_file_is_refused(tmp_path):
    ck = _saved(tmp_path)
    (ck / "optim" / "thinker_0.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"optim/thinker_0.pt does not match its checksum"):
        load_checkpoint(ck)


def _rewrite_checksum(ck, rel):
    import hashlib
    import json

    meta = json.loads((ck / "meta.json").read_text())
    meta["checksums"][rel] = hashlib.sha256((ck / rel).read_bytes()).hexdigest()
    (ck / "meta.json").write_text(json.dumps(meta))


def test_a_corrupt_header_and_nan_weights_are_clear_errors(tmp_path):
    """Damage that a checksum does not catch (the file was written that way): named, not a traceback."""
    from safetensors.torch import save_file

    ck = _saved(tmp_path)
    rel = "weights/thinker_0.safetensors"
    data = bytearray((ck / rel).read_bytes())
    data[8:16] = b"{nonsens"  # the JSON header
    (ck / rel).write_bytes(bytes(data))
    _rewrite_checksum(ck, rel)
    with pytest.raises(CheckpointError,
                       match=r"cannot read the weights of thinker_0 \(weights/thinker_0.safetensors\)"):
        load_checkpoint(ck)
    save_file({"weight": torch.full((3, 4), float("nan")), "bias": torch.zeros(3)}, str(ck / rel))
    _rewrite_checksum(ck, rel)
    with pytest.raises(CheckpointError, match=r"weights of thinker_0 hold NaN or inf values \(weight\)"):
        load_checkpoint(ck)


def test_corrupt_meta_is_a_clear_error(tmp_path):
    ck = _saved(tmp_path)
    (ck / "meta.json").write_text('{"format_version": 2, "step"')
    with pytest.raises(CheckpointError, match=r"meta\.json is corrupt"):
        load_checkpoint(ck)
