"""The credit-method registry: :func:`register`, :func:`get`, :func:`available` and plugins
(:func:`load_plugin`), on the shared :class:`~algorithms.registry.Registry`. Everything here is
re-exported by :mod:`algorithms.credit`; the built-in methods import :func:`register` from here."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from ..registry import Registry
from ..rollout import EpisodeGroup
from .base import GROUPINGS, ROLES, CreditMethod, normalize_needs

__all__ = ["REGISTRY", "register", "unregister", "available", "parameters", "check_params", "get", "load_plugin",
           "plugin_loaded", "check_plugin"]


class _Entry(NamedTuple):
    """What :func:`register` records: the class or function, and the ``requires`` and ``grouping``
    given to it (``None`` when not given)."""

    obj: Any
    requires: frozenset[str] | None
    grouping: dict | None


#: The credit methods by name (:class:`~algorithms.registry.Registry`), built-ins first.
REGISTRY: Registry[_Entry] = Registry("credit method")


class _FunctionMethod(CreditMethod):
    """A registered plain function ``fn(groups, **params)`` seen as a credit method."""

    def __init__(self, name: str, fn: Callable, requires: frozenset[str], params: dict,
                 grouping: dict | None = None) -> None:
        super().__init__()
        self.name, self.fn, self.requires, self.params = name, fn, requires, params
        self.grouping = dict(grouping or {})

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        return self.fn(groups, **self.params)


def _check_grouping(name: str, grouping: Any) -> dict | None:
    if grouping is None:
        return None
    if not isinstance(grouping, dict):
        raise TypeError(f"credit.register({name!r}): grouping must be a dict role -> one of {GROUPINGS}, "
                        f"got {type(grouping).__name__}")
    for role, g in grouping.items():
        if role not in ROLES:
            raise ValueError(f"credit.register({name!r}): grouping names unknown role {role!r}; "
                             f"roles: {', '.join(ROLES)}")
        if g not in GROUPINGS:
            raise ValueError(f"credit.register({name!r}): grouping for {role} must be one of {GROUPINGS}, got {g!r}")
        if role == ROLES[0] and g != "problem":
            raise ValueError(f"credit.register({name!r}): the Thinker's units are its thoughts, grouped by problem; "
                             f"only the Solver can be grouped by thought")
    return dict(grouping)


def register(name: str, *, requires: Iterable[str] | None = None, grouping: dict | None = None,
             replace: bool = False) -> Callable[[Any], Any]:
    """Decorator adding a credit method under ``name``.

    Works on a class (``get`` instantiates it with the given parameters; subclass
    :class:`CreditMethod` or provide ``requires`` and ``__call__``) or on a function
    ``fn(groups, **params) -> {agent: rewards}``. ``requires`` names the counterfactuals it
    needs (see :data:`COUNTERFACTUALS`); for a class it may also be a class attribute.
    ``grouping`` (e.g. ``{"solver_0": "thought"}``) says how the estimator groups a role's
    rewards (:data:`GROUPINGS`; default ``"problem"``); for a class it may also be a class
    attribute. Re-registering a name is an error unless ``replace=True``.
    """
    REGISTRY.check_name(name)
    req = None if requires is None else normalize_needs(requires)
    grp = _check_grouping(name, grouping)

    def deco(obj):
        if not callable(obj):
            raise TypeError(f"credit.register({name!r}) needs a class or a function, got {type(obj).__name__}")
        own = normalize_needs(req if req is not None else getattr(obj, "requires", frozenset())) \
            if inspect.isclass(obj) else None
        REGISTRY.register(name, _Entry(obj, req, grp), replace=replace)
        if own is not None:
            obj.requires = own
            if grp is not None:
                obj.grouping = grp
        return obj

    return deco


def unregister(name: str) -> None:
    """Remove the method ``name`` (nothing happens if it is not registered)."""
    REGISTRY.unregister(name)


def available() -> list[str]:
    """The registered method names, built-ins first."""
    return REGISTRY.available()


def parameters(name: str) -> list[str] | None:
    """The parameter names method ``name`` accepts (read from its signature; nothing is built),
    or ``None`` when it takes any keyword (``**params``). An unknown name lists the available ones."""
    sig = inspect.signature(REGISTRY.get(name).obj)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [p for p, v in sig.parameters.items() if p != "groups" and v.kind != inspect.Parameter.VAR_POSITIONAL]


def check_params(name: str, params: dict) -> None:
    """A ``TypeError`` naming the parameters of ``params`` that method ``name`` does not have
    (their values are the method's own business: it checks them when it is built)."""
    accepted = parameters(name)
    if accepted is not None:
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise TypeError(f"credit method {name!r} has no parameter(s) {unknown}; "
                            f"parameters: {', '.join(accepted) or 'none'}")


def _plugin_path(source: str) -> Path | None:
    """The file of a ``.py`` plugin (``None`` for a module name)."""
    path = Path(source)
    return path if source.endswith(".py") or path.is_file() else None


def _plugin_module(path: Path) -> str:
    """The ``sys.modules`` name a plugin file is imported under (one per resolved path)."""
    path = path.resolve()
    return f"thinksolve_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def check_plugin(source: str) -> None:
    """The errors :func:`load_plugin` would raise for a plugin that is not there (a ``.py`` file
    that does not exist, a module name that cannot be found), without importing anything."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"a credit plugin must be a .py path or a module name, got {source!r}")
    path = _plugin_path(source)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"credit plugin {source!r}: no such file")
    elif source.split(".")[0] not in sys.modules and importlib.util.find_spec(source.split(".")[0]) is None:
        raise ModuleNotFoundError(f"credit plugin {source!r}: No module named {source.split('.')[0]!r}")


def plugin_source(source: str) -> str:
    """How a configuration records plugin ``source``: an existing ``.py`` file by its absolute path
    (a relative one is relative to the working directory, so a run that recorded it would not find
    it again from another folder), anything else as given."""
    path = _plugin_path(source) if isinstance(source, str) else None
    return str(path.resolve()) if path is not None and path.is_file() else source


def plugin_loaded(source: str) -> bool:
    """Whether :func:`load_plugin` has imported ``source`` in this process."""
    path = _plugin_path(source)
    if path is None:
        return source in sys.modules
    return path.is_file() and _plugin_module(path) in sys.modules


def load_plugin(source: str) -> ModuleType:
    """Import ``source`` — a ``.py`` file path or an importable module name — so that the credit
    methods it registers become available; returns the module. Loading the same file again
    reuses the module already imported (its registrations stay as they are)."""
    check_plugin(source)
    path = _plugin_path(source)
    if path is not None:
        name = _plugin_module(path)
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path.resolve())
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


def get(name: str, **params: Any) -> CreditMethod:
    """The credit method ``name`` configured with ``params``.

    An unknown name or parameter is an error that lists the available ones; the method checks
    the parameters' values itself (a ``ValueError``)."""
    obj, req, grp = REGISTRY.get(name)
    check_params(name, params)
    if inspect.isclass(obj):
        method = obj(**params)
        if not getattr(method, "name", None) or method.name == CreditMethod.name:
            method.name = name
        return method
    requires = req if req is not None else normalize_needs(getattr(obj, "requires", frozenset()))
    return _FunctionMethod(name, obj, requires, params, grp)
