"""One name → object registry, shared by attacks, architectures, quantizers and training recipes.

Each extension point used to keep its own dict with its own duplicate check and its own
"unknown name" message; one class keeps the rules (no silent overwrite, one error wording
that lists the valid names and suggests the closest) the same everywhere, so a contributor
learns them once.

Example::

    SCHEDULES = Registry("schedule")

    @SCHEDULES.register("cosine")
    def cosine(step, total): ...

    SCHEDULES.get("cosine")   # the function
    SCHEDULES.get("cosin")    # UnknownNameError: unknown schedule 'cosin'; valid schedules:
                              # cosine; did you mean 'cosine'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")
_MISSING = object()


def unknown_name_error(kind: str, name: str, valid) -> UnknownNameError:
    """The error for an unregistered ``name``: the valid names and, if one is close, a suggestion."""
    valid = sorted(valid)
    err = UnknownNameError(kind, name, valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    if close:
        err.args = (f"{err}; did you mean {close[0]!r}?",)
    return err


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` words the errors: "attack", "architecture", ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, value=_MISSING):
        """File ``value`` under ``name`` and return it; without ``value``, a decorator that files
        the decorated object and returns it unchanged. A name is registered once: a second
        registration is a mistake (two modules claiming one name), never an override."""
        if value is _MISSING:
            def deco(obj: T) -> T:
                self.register(name, obj)
                return obj

            return deco
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = value
        return value

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown_name_error(self.kind, name, self._entries) from None

    def check(self, names) -> None:
        """Raise for the first unregistered name in ``names`` (validation before any work starts)."""
        for n in names:
            if n not in self._entries:
                raise unknown_name_error(self.kind, n, self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """Entries in registration order (the order a listing shows them in)."""
        return list(self._entries.items())

    def mapping(self) -> Mapping[str, T]:
        """A live, read-only view: later registrations show, but nobody can bypass ``register``."""
        return MappingProxyType(self._entries)

    def __contains__(self, name) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


__all__ = ["Registry", "unknown_name_error"]
