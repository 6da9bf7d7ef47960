"""Login throttling: failed logins counted per user name and per client address in a sliding window.

Kept in the server's memory (one `labctl serve` process serves a lab): a restart forgets the counts, which
costs an attacker a restart they cannot cause. Per name stops guessing one account from many addresses; per
address stops one client trying many names.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginThrottle:
    """`blocked(name, address)` -> seconds to wait (0: go on); `failed(...)` / `succeeded(...)` record."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window_s: float = 900.0) -> None:
        self.per_user, self.per_address, self.window_s = per_user, per_address, window_s
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _wait(self, key: str, limit: int, now: float) -> float:
        q = self._fails.get(key)
        if not q:
            return 0.0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q[0] + self.window_s - now if len(q) >= limit else 0.0

    def blocked(self, name: str, address: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(self._wait("u:" + name, self.per_user, now),
                       self._wait("a:" + address, self.per_address, now))

    def failed(self, name: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._fails["u:" + name].append(now)
            self._fails["a:" + address].append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop("u:" + name, None)
