"""Sample holder motion: piecewise-linear segments from `stage_move`/`stage_stop`, and the exact intervals
during which the sample is below a bath's surface (entry and exit times solved from the linear segments)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

Vec3 = tuple[float, float, float]


@dataclass
class Piece:
    """Motion from t0 to t1: position p0 + v·(t − t0)."""

    t0: float
    t1: float
    p0: Vec3
    v: Vec3

    def at(self, t: float) -> Vec3:
        d = t - self.t0
        return (self.p0[0] + self.v[0] * d, self.p0[1] + self.v[1] * d, self.p0[2] + self.v[2] * d)


class Stage:
    """Where the sample is; moves are straight lines at the given speed, queued moves may start later."""

    def __init__(self, position: Vec3 = (0.0, 0.0, 0.0)) -> None:
        self.position = position  # at `self.t`
        self.t = 0.0
        self.moves: list[Piece] = []  # planned, not yet fully in the past

    def move(self, t0: float, start: Vec3, end: Vec3, speed: float) -> None:
        dist = math.dist(start, end)
        if dist == 0:
            return
        dur = dist / speed if speed > 0 else 0.0
        v = tuple((e - s) / dur for s, e in zip(start, end, strict=True)) if dur > 0 else (0.0, 0.0, 0.0)
        self.moves.append(Piece(t0, t0 + dur, start, v))  # type: ignore[arg-type]
        self.moves.sort(key=lambda m: m.t0)

    def stop(self, t: float) -> None:
        """Motion ends at `t`: the active move is cut there, queued moves are dropped."""
        kept = []
        for m in self.moves:
            if m.t0 >= t:
                continue
            if m.t1 > t:
                m.t1 = t
            kept.append(m)
        self.moves = kept

    def pieces(self, t_end: float) -> Iterator[Piece]:
        """The motion from `self.t` to `t_end` (rests as zero-velocity pieces); advances the stage."""
        cur, pos = self.t, self.position
        while cur < t_end:
            nxt = next((m for m in self.moves if m.t1 > cur), None)
            if nxt is None or nxt.t0 >= t_end:
                yield Piece(cur, t_end, pos, (0.0, 0.0, 0.0))
                cur = t_end
                break
            if nxt.t0 > cur:
                yield Piece(cur, nxt.t0, pos, (0.0, 0.0, 0.0))
                cur = nxt.t0
            pos = nxt.at(cur) if nxt.t0 <= cur else nxt.p0
            stop = min(nxt.t1, t_end)
            piece = Piece(cur, stop, pos, nxt.v)
            yield piece
            pos, cur = piece.at(stop), stop
            if stop >= nxt.t1:
                pos = nxt.at(nxt.t1)
        self.t, self.position = max(self.t, t_end), pos
        self.moves = [m for m in self.moves if m.t1 > self.t]

    def where(self, t: float) -> Vec3:
        """Position at `t` (>= the last advance) without advancing."""
        cur, pos = self.t, self.position
        for m in self.moves:
            if m.t0 > t:
                break
            if m.t1 <= cur:
                continue
            pos = m.at(min(t, m.t1))
            cur = min(t, m.t1)
        return pos


def inside_interval(piece: Piece, *, x: float, half_width: float,
                    surface_z: float) -> tuple[float, float] | None:
    """The part of `piece` where |x(t) − x| < half_width and z(t) < surface_z (None if empty)."""
    lo, hi = piece.t0, piece.t1
    for p0, v, low, high in ((piece.p0[0], piece.v[0], x - half_width, x + half_width),
                             (piece.p0[2], piece.v[2], -math.inf, surface_z)):
        if v == 0:
            if not (low < p0 < high):
                return None
            continue
        ta = piece.t0 + (low - p0) / v
        tb = piece.t0 + (high - p0) / v
        lo, hi = max(lo, min(ta, tb)), min(hi, max(ta, tb))
    return (lo, hi) if hi > lo else None
