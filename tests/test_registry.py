"""The one registry helper (algorithms.registry.Registry) and the three registries built on it:
estimators, losses and credit methods (names, order, errors, parameters checked without building
the method, plugins that are there to load)."""

from __future__ import annotations

import sys

import pytest

from algorithms import credit, estimators, losses
from algorithms.registry import Registry


def test_register_get_available_contains():
    reg = Registry("widget")

    @reg.register("b")
    def b():
        return "b"

    assert reg.register("a", len) is len  # direct form returns the object
    assert reg.get("b") is b and reg.get("a") is len
    assert reg.available() == ["b", "a"] and list(reg) == ["b", "a"] and len(reg) == 2  # registration order
    assert "a" in reg and "c" not in reg and ["unhashable"] not in reg
    assert repr(reg) == "Registry('widget': b, a)"


def test_errors_say_what_is_available_and_how_to_replace():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match=r"^unknown widget 'z'; available: a$"):
        reg.get("z")
    with pytest.raises(ValueError, match=r"unknown widget \['x'\]"):
        reg.get(["x"])
    with pytest.raises(ValueError, match=r"^widget 'a' is already registered; pass replace=True to override it$"):
        reg.register("a", 2)
    assert reg.register("a", 2, replace=True) == 2 and reg.get("a") == 2
    for bad in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="a widget name must be a non-empty string"):
            reg.register(bad, 1)
    with pytest.raises(ValueError, match="available: none"):
        Registry("widget").get("a")


def test_unregister_snapshot_restore():
    reg = Registry("widget")
    reg.register("a", 1)
    saved = reg.snapshot()
    reg.register("b", 2)
    assert reg.unregister("b") == 2 and reg.unregister("b") is None  # absent: nothing happens
    reg.register("c", 3)
    reg.restore(saved)
    assert reg.available() == ["a"]


def test_estimators_losses_and_credit_share_it():
    for module, kind in ((estimators, "advantage estimator"), (losses, "policy loss"), (credit, "credit method")):
        assert isinstance(module.REGISTRY, Registry) and module.REGISTRY.kind == kind
        assert module.available() == module.REGISTRY.available()
    with pytest.raises(ValueError, match="estimator 'grpo' is already registered; pass replace=True"):
        estimators.register("grpo")(lambda r, index=None: r)
    with pytest.raises(ValueError, match="loss 'gspo' is already registered; pass replace=True"):
        losses.register("gspo")(lambda *a: a)
    with pytest.raises(ValueError, match="unknown policy loss 'ppo'; available: grpo, gspo"):
        losses.get("ppo")
    with pytest.raises(ValueError, match="a credit method name must be a non-empty string"):
        credit.register("")


def test_allowed_values_live_with_their_registry():
    assert estimators.SCALES == ("group", "batch", "none")
    assert losses.KL_TYPES == ("k1", "k3")
    assert "token-mean" in losses.AGG_MODES and "seq-mean-token-sum-norm-verl" in losses.AGG_MODES


@pytest.mark.usefixtures("credit_registry_restored")
def test_credit_parameters_are_read_from_the_signature_without_building():
    built = []

    @credit.register("test_strict")
    class Strict(credit.CreditMethod):
        def __init__(self, lam: float = 0.1, mode: str = "a") -> None:
            super().__init__()
            built.append((lam, mode))
            if lam < 0:
                raise ValueError(f"test_strict: lam must be >= 0, got {lam}")

        def compute(self, groups):
            return {}

    @credit.register("test_loose")
    def loose(groups, **params):
        return {}

    assert credit.parameters("test_strict") == ["lam", "mode"] and credit.parameters("test_loose") is None
    assert credit.parameters("ccpo")[:2] == ["variant", "lam"]
    credit.check_params("test_strict", {"lam": -1})  # values are the method's business
    credit.check_params("test_loose", {"anything": 1})
    with pytest.raises(TypeError, match=r"'test_strict' has no parameter\(s\) \['lamm'\]; parameters: lam, mode"):
        credit.check_params("test_strict", {"lamm": 1})
    assert built == []  # nothing was built
    with pytest.raises(ValueError, match="lam must be >= 0"):
        credit.get("test_strict", lam=-1)
    with pytest.raises(ValueError, match="unknown credit method 'nope'; available: shared, ccpo"):
        credit.parameters("nope")
    credit.unregister("test_strict")
    assert "test_strict" not in credit.available()


@pytest.mark.usefixtures("credit_registry_restored")
def test_plugins_are_checked_without_being_imported(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("from algorithms import credit\n\n"
                      "@credit.register('test_from_plugin')\n"
                      "def f(groups):\n    return {}\n")
    credit.check_plugin(str(plugin))
    credit.check_plugin("json")  # an importable module
    assert not credit.plugin_loaded(str(plugin)) and "test_from_plugin" not in credit.available()
    with pytest.raises(FileNotFoundError, match="no such file"):
        credit.check_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        credit.check_plugin("no_such_module_here.sub")
    with pytest.raises(ValueError, match=r"a \.py path or a module name"):
        credit.check_plugin("")
    module = credit.load_plugin(str(plugin))
    assert credit.plugin_loaded(str(plugin)) and module.__name__ in sys.modules
    assert "test_from_plugin" in credit.available()
