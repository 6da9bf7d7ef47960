"""One feed per watched run, shared by all its viewers: the live view's poll of the store (the run's state
and the points stored since the last poll) is made once per period for a run, however many browsers watch
it, and each viewer takes the points past its own last one from the feed's memory. Twenty viewers then cost
the store (and the run writing to it) what one does.

A feed keeps the points since the first viewer's start (`base`), trimmed to the last `KEEP` points; a viewer
whose last point is older than that reads its gap from the store directly, once. A feed is dropped when its
last viewer leaves.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.web import data
from labctl.web.downsample import window

if TYPE_CHECKING:
    from labctl.api import Lab

KEEP = 400_000  # points a feed keeps in memory (a few MB): a viewer further behind reads from the store


@dataclass
class Feed:
    base: float  # the feed holds every stored point with t > base
    t: np.ndarray = field(default_factory=lambda: np.empty(0))
    v: np.ndarray = field(default_factory=lambda: np.empty(0))
    state: str = ""
    done: bool = False
    polled_at: float = -np.inf
    viewers: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    messages: dict[tuple[float, float], str] = field(default_factory=dict)  # (after, last) -> SSE text

    @property
    def last(self) -> float:
        return float(self.t[-1]) if self.t.size else self.base


class LiveFeeds:
    """The feeds of the runs being watched, by run id."""

    def __init__(self, lab: Lab, period: float) -> None:
        self.lab, self.period = lab, period
        self.feeds: dict[int, Feed] = {}

    def join(self, run_id: int, after: float) -> Feed:
        feed = self.feeds.get(run_id)
        if feed is None:
            feed = self.feeds[run_id] = Feed(base=after)
        feed.viewers += 1
        return feed

    def leave(self, run_id: int) -> None:
        feed = self.feeds.get(run_id)
        if feed is not None:
            feed.viewers -= 1
            if feed.viewers <= 0:
                del self.feeds[run_id]

    async def poll(self, run_id: int, feed: Feed) -> None:
        """Bring the feed up to date, unless another viewer did within the period."""
        async with feed.lock:
            if time.monotonic() - feed.polled_at < 0.9 * self.period:
                return
            run = await asyncio.to_thread(data.open_run, self.lab, run_id)
            t, v = await asyncio.to_thread(data.voltage_since, self.lab, run_id, feed.last)
            if t.size:
                feed.t, feed.v = np.concatenate([feed.t, t]), np.concatenate([feed.v, v])
                if feed.t.size > KEEP:
                    cut = feed.t.size - KEEP
                    feed.base = float(feed.t[cut - 1])
                    feed.t, feed.v = feed.t[cut:], feed.v[cut:]
            feed.state, feed.done = run.state, run.done
            feed.polled_at = time.monotonic()
            feed.messages.clear()  # viewers in step share one message per poll

    async def points_after(self, run_id: int, feed: Feed, after: float) -> tuple[np.ndarray, np.ndarray]:
        """The points with t > `after` the feed knows of (from the store when `after` is before the feed)."""
        if after < feed.base:
            t, v = await asyncio.to_thread(data.voltage_since, self.lab, run_id, after)
            keep = t <= feed.last
            return t[keep], v[keep]
        i = int(np.searchsorted(feed.t, after, side="right"))
        return feed.t[i:], feed.v[i:]


    async def message(self, run_id: int, feed: Feed, after: float, width: int) -> tuple[str, float]:
        """The SSE `points` message for a viewer whose last point is `after` (cut to `width` points) and the
        new last point; ("", after) when there is nothing new. Viewers at the same point share the text."""
        key = (after, feed.last)
        if key not in feed.messages:
            t, v = await self.points_after(run_id, feed, after)
            if not t.size:
                return "", after
            w = window(t, v, width)
            feed.messages[key] = f"event: points\ndata: {json.dumps(w.as_json())}\n\n"
        return feed.messages[key], feed.last


def feeds(app: Any, period: float) -> LiveFeeds:
    if not hasattr(app.state, "live_feeds"):
        app.state.live_feeds = LiveFeeds(app.state.lab, period)
    return app.state.live_feeds
