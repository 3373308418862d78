"""One registry type for everything found by name: schedules, samplers, models, sections, ...

    SCHEDULES = Registry("schedule")

    @SCHEDULES.register("cosine")
    def cosine_betas(num_steps, s=0.008): ...

    SCHEDULES["cosine"]      # the function; an unknown name raises UnknownNameError
    sorted(SCHEDULES)        # the names

A registry is a mapping from names to objects. Registering a name twice is an error (a research
fork's typo should not silently replace a built-in); `del` or `pop` removes an entry (tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no entry is registered under. A KeyError for mappings and a ValueError for callers
    that validate input; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(MutableMapping[str, T], Generic[T]):
    """Names -> objects of one kind (`kind` is used in messages: "unknown schedule 'x'")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """`@registry.register(name)` as a decorator, or `registry.register(name, obj)`."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add if obj is None else add(obj)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}"
            ) from None

    def __setitem__(self, name: str, obj: T) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(sorted(self._entries))})"
