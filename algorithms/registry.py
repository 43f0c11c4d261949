"""One small registry helper, shared by the credit methods, the advantage estimators and the
policy losses: names in, objects out, with errors that say what is available.

::

    LOSSES = Registry("policy loss")

    @LOSSES.register("grpo")
    def grpo_loss(...): ...

    LOSSES.get("grpo")          # the function
    LOSSES.available()          # ["grpo", ...] in registration order
    "grpo" in LOSSES            # True
    LOSSES.get("ppo2")          # ValueError: unknown policy loss 'ppo2'; available: grpo, ...
    LOSSES.register("grpo", f)  # ValueError: policy loss 'grpo' is already registered; pass replace=True ...

A registry is the only module-level state the package keeps; :meth:`Registry.snapshot` and
:meth:`Registry.restore` let a test put one back as it found it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind, in registration order.

    Args:
        kind: what the objects are, for messages (``"credit method"``, ``"policy loss"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    # -- adding ---------------------------------------------------------------------------
    def check_name(self, name: Any) -> str:
        """``name`` if it can name an entry (a non-empty string), else a ValueError."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        return name

    @overload
    def register(self, name: str, obj: None = None, *, replace: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, replace: bool = False) -> Any:
        """Add ``obj`` under ``name`` and return it; without ``obj``, a decorator that does so.

        Registering a name twice is an error unless ``replace=True``."""
        self.check_name(name)

        def add(o: T) -> T:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
            self._entries[name] = o
            return o

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> T | None:
        """Remove ``name`` and return what it held (``None`` if it was not registered)."""
        return self._entries.pop(name, None)

    # -- reading --------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists the available ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self._entries) or 'none'}") from None

    def available(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable name is not registered
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    # -- tests ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, T]:
        """A copy of the entries, for :meth:`restore`."""
        return dict(self._entries)

    def restore(self, snapshot: dict[str, T]) -> None:
        """Put the entries back as they were when ``snapshot`` was taken."""
        self._entries.clear()
        self._entries.update(snapshot)
