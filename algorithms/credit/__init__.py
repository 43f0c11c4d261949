"""Credit assignment: one team outcome in, one reward per role and joint episode out.

Built-in methods (METHOD.md §3–§5), one module each:

==============  =================================================  ===========================
name            Thinker / Solver reward                             requires
==============  =================================================  ===========================
``shared``      r_T = r_S = R_joint                                 —
``ccpo``        counterfactual bonus for the Thinker (variants      ``solo`` (+ ``no_solver``
                ``event``, ``margin``, ``normalized``)              for ``margin``)
``sepo``        R ± λ·(rating share − group mean)                   ``ratings``
``difference``  r_i = R_joint − R_¬i                                ``solo``, ``no_solver``
``shapley``     exact two-player Shapley values                     ``solo``, ``no_solver``
==============  =================================================  ===========================

Usage::

    from algorithms import credit
    method = credit.get("ccpo", variant="event", lam=0.2)
    groups = collect_groups(problems, policies, group_size=8, needs=method.requires)
    rewards = method(groups)          # {"thinker_0": array, "solver_0": array}

Your own method: register a class (subclass :class:`CreditMethod` and implement ``compute``)
or a plain function ``fn(groups, **params) -> {agent: rewards}``::

    @credit.register("solver_only", requires={"solo"})
    def solver_only(groups, bonus=0.1):
        R = credit.joint_rewards(groups)
        return {"thinker_0": R, "solver_0": R + bonus * (R - credit.solo_baselines(groups))}

    credit.get("solver_only", bonus=0.2)(groups)

A method defined in a file or module of your own is loaded with :func:`load_plugin` (the
trainer's ``plugins`` field and the ``--plugin`` flags of ``thinksolve train`` and the credit
benchmark do it for you); ``examples/event_both.py`` is a complete example.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from .base import (
    ROLES,
    COUNTERFACTUALS,
    GROUPINGS,
    NO_SOLVER,
    R_EMPTY,
    RATINGS,
    SOLO,
    CreditMethod,
    MissingCounterfactualError,
    check_needs,
    group_index,
    joint_rewards,
    no_solver_rewards,
    normalize_needs,
    paired_solo_rewards,
    resolve_grouping,
    role_units,
    solo_baselines,
    thought_ids,
    thought_slices,
    thought_values,
    Units,
)

__all__ = [
    "get",
    "register",
    "load_plugin",
    "available",
    "CreditMethod",
    "MissingCounterfactualError",
    "check_needs",
    "normalize_needs",
    "COUNTERFACTUALS",
    "SOLO",
    "NO_SOLVER",
    "RATINGS",
    "R_EMPTY",
    "ROLES",
    "joint_rewards",
    "group_index",
    "solo_baselines",
    "paired_solo_rewards",
    "no_solver_rewards",
    "GROUPINGS",
    "Units",
    "thought_ids",
    "thought_slices",
    "thought_values",
    "role_units",
    "resolve_grouping",
]

_REGISTRY: dict[str, Any] = {}


class _FunctionMethod(CreditMethod):
    """A registered plain function ``fn(groups, **params)`` seen as a credit method."""

    def __init__(self, name: str, fn: Callable, requires: frozenset[str], params: dict, grouping: dict | None = None) -> None:
        super().__init__()
        self.name, self.fn, self.requires, self.params = name, fn, requires, params
        self.grouping = dict(grouping or {})

    def compute(self, groups):
        return self.fn(groups, **self.params)


def _check_grouping(name: str, grouping: Any) -> dict | None:
    if grouping is None:
        return None
    if not isinstance(grouping, dict):
        raise TypeError(f"credit.register({name!r}): grouping must be a dict role -> one of {GROUPINGS}, got {type(grouping).__name__}")
    for role, g in grouping.items():
        if role not in ROLES:
            raise ValueError(f"credit.register({name!r}): grouping names unknown role {role!r}; roles: {', '.join(ROLES)}")
        if g not in GROUPINGS:
            raise ValueError(f"credit.register({name!r}): grouping for {role} must be one of {GROUPINGS}, got {g!r}")
        if role == ROLES[0] and g != "problem":
            raise ValueError(f"credit.register({name!r}): the Thinker's units are its thoughts, grouped by problem; "
                             f"only the Solver can be grouped by thought")
    return dict(grouping)


def register(name: str, *, requires: Iterable[str] | None = None, grouping: dict | None = None, replace: bool = False):
    """Decorator adding a credit method under ``name``.

    Works on a class (``get`` instantiates it with the given parameters; subclass
    :class:`CreditMethod` or provide ``requires`` and ``__call__``) or on a function
    ``fn(groups, **params) -> {agent: rewards}``. ``requires`` names the counterfactuals it
    needs (see :data:`COUNTERFACTUALS`); for a class it may also be a class attribute.
    ``grouping`` (e.g. ``{"solver_0": "thought"}``) says how the estimator groups a role's
    rewards (:data:`GROUPINGS`; default ``"problem"``); for a class it may also be a class
    attribute. Re-registering a name is an error unless ``replace=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a credit method name must be a non-empty string, got {name!r}")
    req = None if requires is None else normalize_needs(requires)
    grp = _check_grouping(name, grouping)

    def deco(obj):
        if name in _REGISTRY and not replace:
            raise ValueError(f"credit method {name!r} is already registered; pass replace=True to override it")
        if not callable(obj):
            raise TypeError(f"credit.register({name!r}) needs a class or a function, got {type(obj).__name__}")
        if inspect.isclass(obj):
            if req is not None:
                obj.requires = req
            elif not hasattr(obj, "requires"):
                obj.requires = frozenset()
            obj.requires = normalize_needs(obj.requires)
            if grp is not None:
                obj.grouping = grp
        _REGISTRY[name] = (obj, req, grp)
        return obj

    return deco


def load_plugin(source: str):
    """Import ``source`` — a ``.py`` file path or an importable module name — so that the credit
    methods it registers become available; returns the module. Loading the same file again
    reuses the module already imported (its registrations stay as they are)."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"a credit plugin must be a .py path or a module name, got {source!r}")
    path = Path(source)
    if source.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"credit plugin {source!r}: no such file")
        path = path.resolve()
        name = f"thinksolve_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"credit plugin {source!r}: {e}") from e


def available() -> list[str]:
    """The registered method names, built-ins first."""
    return list(_REGISTRY)


def get(name: str, **params) -> CreditMethod:
    """The credit method ``name`` configured with ``params``.

    An unknown name or parameter is an error that lists the available ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown credit method {name!r}; available: {', '.join(available())}")
    obj, req, grp = _REGISTRY[name]
    sig = inspect.signature(obj)
    accepted = [p for p in sig.parameters if p != "groups" and sig.parameters[p].kind not in (inspect.Parameter.VAR_POSITIONAL,)]
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise TypeError(f"credit method {name!r} has no parameter(s) {unknown}; parameters: {', '.join(accepted) or 'none'}")
    if inspect.isclass(obj):
        method = obj(**params)
        if not getattr(method, "name", None) or method.name == CreditMethod.name:
            method.name = name
        return method
    requires = req if req is not None else normalize_needs(getattr(obj, "requires", frozenset()))
    return _FunctionMethod(name, obj, requires, params, grp)


# Built-ins register themselves on import, in this order.
from . import shared, ccpo, sepo, difference, shapley, tree  # noqa: E402,F401
