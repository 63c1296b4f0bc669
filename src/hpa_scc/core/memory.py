"""Bounded in-memory holders."""

from __future__ import annotations

from typing import Callable


class RecentlyUsed:
    """At most `capacity` values by key; the least recently used one is dropped to make room."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._values: dict = {}

    def get(self, key, load: Callable[[], object]):
        """The value of `key`, from `load()` when it is not held."""
        if key in self._values:
            self._values[key] = self._values.pop(key)  # most recently used last
        else:
            if len(self._values) >= self.capacity:
                self._values.pop(next(iter(self._values)))
            self._values[key] = load()
        return self._values[key]
