"""Every piece of state the job layer keeps is one of these: a map with a cap that evicts its oldest entry
and counts the eviction by kind, so no stream can grow memory without a trace in the metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(dict[K, V], Generic[K, V]):
    """A dict in insertion order; `put` evicts the oldest entries beyond `cap` and reports each one."""

    __slots__ = ("cap", "kind", "on_evict")

    def __init__(self, cap: int, kind: str, on_evict: Callable[[str], None]) -> None:
        super().__init__()
        self.cap = cap
        self.kind = kind
        self.on_evict = on_evict

    def put(self, key: K, value: V) -> None:
        self[key] = value
        if len(self) > self.cap:
            del self[next(iter(self))]
            self.on_evict(self.kind)

    def oldest(self) -> V:
        return self[next(iter(self))]
