"""The cell: symmetric Li|Li voltage model of physics.md §2 (vectorised over a buffer), Li|Cu coulombic
efficiency (§2.8), the §3 impedance circuit (consistent with the DC model) and the OCV.

Current convention: positive current plates on electrode 1 and gives a positive voltage; in a Li|Cu cell
electrode 1 is the Cu, so negative current plates Li on the Cu (negative voltage) and positive current strips
it. A sample's current is the current held since the previous sample. State (cumulative capacity, dead Li,
resistance growth, the short clock) is carried between calls, so a long experiment can arrive in chunks.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from labctl.simulators.physics.cellparams import CellParams

SPIKE_RATE = 1e-5  # rare measurement spikes per point
CU_OCV = 2.9  # V, Li|Cu with no Li on the Cu
R_LEAK = 1e6  # Ω cm², an electrode with no Li to strip: side reactions only (1 µA/cm² at 1 V)


def _rq(r: float, q: float, alpha: float, jw: np.ndarray) -> np.ndarray:
    return r / (1 + r * q * jw**alpha) if r > 0 else np.zeros_like(jw)


def _ws(r_d: float, tau: float, jw: np.ndarray) -> np.ndarray:
    x = np.sqrt(jw * tau)
    big = np.abs(x) > 20
    th = np.tanh(np.where(big, 0, x))
    th = np.where(big, 1.0 + 0j, th)
    return r_d * th / x


class Cell:
    """One assembled cell with its stochastic draws fixed at assembly (see `CellParams`)."""

    def __init__(self, p: CellParams, *, events: np.random.Generator, noise: np.random.Generator,
                 t0: float = 0.0, measurement_noise: bool = True) -> None:
        self.p = p
        self._events, self._noise, self.noisy = events, noise, measurement_noise
        self.t = t0
        self.sign = 0  # sign of the current over the last interval
        self.last_sign = 0  # last non-zero sign (direction of the current half-cycle)
        self.k = -1  # index of the current half-cycle
        self.q_half = 0.0  # mAh/cm^2 passed in the current half-cycle
        self.q_last: float | None = None  # capacity of the last completed half-cycle
        self.q_total = 0.0
        self.lost = 0.0  # mAh/cm^2 turned into dead Li (½ Σ (1-CE)·Q over cycles)
        self.u_clock = 0.0  # cumulative exposure of the short clock
        self.eta_c = 0.0  # concentration overpotential at `self.t`
        self.run_t0, self.run_eta0 = t0, 0.0
        self.t_short: float | None = None
        self.t_soft: float | None = None
        self.soft_connected = False
        self.hc = self._half_cycle_params()
        self.cu_li = 0.0  # Li|Cu: active Li on the Cu
        self.cu_cycle = 0
        self.ce_log: list[float] = []

    # -- state ----------------------------------------------------------------------------------------

    @property
    def shorted(self) -> bool:
        return self.t_short is not None

    def _cycle(self) -> int:
        return max(self.k, 0) // 2

    def _half_cycle_params(self) -> tuple[float, float, float, float]:
        p, n = self.p, self._cycle()
        l_dead = p.l_dead_um(self.lost)
        a_nuc = p.a_nuc_first if self.k <= 0 else p.a_nuc
        return p.r_ohm(self.lost), p.m_act(n), a_nuc, min(0.5, p.a_arc0 * (1 + l_dead / 50.0))

    def _cu_ce(self) -> float:
        p, n = self.p, self.cu_cycle
        ce = p.ce_ss - (p.ce_ss - p.ce_1) * math.exp(-(n - 1) / 10.0) + self._events.normal(0, 0.002)
        return min(ce, 0.9995)

    def _begin_run(self, s: int, t_start: float) -> None:
        self.run_t0, self.run_eta0 = t_start, self.eta_c
        if s == 0 or s == self.last_sign:
            return
        if self.k >= 0 and self.q_half > 0:  # the previous half-cycle ends
            if self.p.kind == "li_cu":
                self._end_cu_half_cycle()
            self.q_last = self.q_half
        self.k += 1
        self.q_half = 0.0
        self.last_sign = s
        if self.p.kind == "li_cu" and s < 0:
            self.cu_cycle += 1
        self.hc = self._half_cycle_params()
        if self.t_soft is not None:  # fuse effect: the filament burns out / re-forms per half-cycle
            r = self._events.random()
            self.soft_connected = (r >= 0.5) if self.soft_connected else (r < 0.3)

    def _end_cu_half_cycle(self) -> None:
        if self.last_sign < 0:  # plating on Cu ends: part of it becomes dead Li
            ce = self._cu_ce()
            self.ce_log.append(ce)
            self.cu_li += ce * self.q_half
            self.lost += (1 - ce) * self.q_half
        else:
            self.cu_li = max(0.0, self.cu_li - self.q_half)

    # -- DC -------------------------------------------------------------------------------------------

    def voltage(self, t: np.ndarray, current_a: np.ndarray) -> np.ndarray:
        """Cell voltage (V) at times `t` (s) for currents (A) held since the previous sample."""
        t = np.asarray(t, dtype=float).ravel()
        n = t.size
        if n == 0:
            return np.empty(0)
        j = np.broadcast_to(np.asarray(current_a, dtype=float).ravel(), t.shape) * (1e3 / self.p.area_cm2)
        s = np.sign(j)
        s[np.abs(j) < 1e-9] = 0.0
        bounds = [0, *(np.flatnonzero(s[1:] != s[:-1]) + 1).tolist(), n]
        out = np.empty(n)
        for a, b in itertools.pairwise(bounds):
            sa = int(s[a])
            t_before = self.t if a == 0 else float(t[a - 1])
            if a > 0 or sa != self.sign:
                self._begin_run(sa, t_before)
            self.sign = sa
            if sa == 0:
                out[a:b] = self._rest(t[a:b])
            else:
                out[a:b] = self._drive(t[a:b], np.abs(j[a:b]), t_before, sa)
        self.t = float(t[-1])
        if self.noisy:
            out += self._noise.normal(0.0, self.p.sigma_meas, n)
            k = self._noise.poisson(n * SPIKE_RATE)
            if k:
                out[self._noise.integers(0, n, k)] += self._noise.choice([-1, 1], k) * self._noise.uniform(
                    2e-3, 5e-3, k)
        return out

    def _rest(self, tt: np.ndarray) -> np.ndarray:
        p = self.p
        if self.shorted:
            self.eta_c = 0.0
            return np.zeros(tt.size)
        eta = self.run_eta0 * np.exp(-(tt - self.run_t0) / p.tau1)
        self.eta_c = float(eta[-1])
        base = p.ocv_offset
        if p.kind == "li_cu" and self._cu_li_now() <= 1e-9:
            base = CU_OCV
        return eta + base

    def _cu_li_now(self) -> float:
        if self.last_sign < 0:
            return self.cu_li + self.q_half
        return max(0.0, self.cu_li - self.q_half)

    def _drive(self, tt: np.ndarray, jj: np.ndarray, t_before: float, s: int) -> np.ndarray:
        """The driven points of one run of constant sign; `t_before` is the time of the previous sample."""
        p = self.p
        t_start = min(t_before, float(tt[0]))
        const = bool(jj[0] == jj[-1] and not np.any(jj != jj[0]))
        if const:  # constant current (the usual case): scalars broadcast, fewer array passes
            jj = jj[:1]
            q = (tt - t_start) * (float(jj[0]) / 3600.0)
            q += self.q_half
            dt = None
        else:
            dt = np.maximum(np.diff(tt, prepend=t_before), 0.0)
            q = self.q_half + np.cumsum(jj * dt / 3600.0)
        dq_sum = float(q[-1]) - self.q_half
        self.q_half = float(q[-1])
        self.q_total += dq_sum
        if self.shorted:
            self.eta_c = 0.0
            return s * jj * 1e-3 * p.r_sh * (1 + 0.2 * self._noise.standard_normal(tt.size))
        r_ohm, m_act, a_nuc, a_arc = self.hc
        qref = self.q_last or 1.0
        x = jj / p.j_lim
        sand = bool(x[0] >= 1.0)
        k_tr = 0  # points [0, k_tr) carry the concentration transient `trans` on top of `eta_base`
        trans: np.ndarray | float = 0.0
        if not sand:
            xs = x if const else np.minimum(x, 0.999)  # a ramp that crosses j_lim mid-run: capped
            ss = 2 * p.vt * (1 - p.t_plus) * np.log((1 + xs) / (1 - xs))
            eta_base: np.ndarray | float = s * (float(ss[0]) if const else ss)
            k_tr = int(np.searchsorted(tt, self.run_t0 + 30 * p.tau1))
            if k_tr:
                trans = (self.run_eta0 - s * float(ss[0])) * np.exp(-(tt[:k_tr] - self.run_t0) / p.tau1)
            eta_end = float(eta_base if const else eta_base[-1])  # type: ignore[index]
            if k_tr == tt.size:
                eta_end += float(trans[-1])  # type: ignore[index]
        else:  # Sand regime: surface depletion, then dendrites (area gain) and a short after t_cross
            tau = tt - self.run_t0
            t_sand = p.t_sand_c / jj[0] ** 2
            r = np.sqrt(np.minimum(tau / t_sand, 1 - 1e-12))
            eta_base = s * np.minimum(1.0, -2 * p.vt * (1 - p.t_plus) * np.log1p(-r))
            eta_base[tau > t_sand] = s * 2 * p.vt * (1 - p.t_plus) * math.log(10.0)
            eta_end = float(eta_base[-1])
        if p.kind == "li_cu":
            eta_ct = 2 * p.vt * m_act * np.arcsinh(jj / (2 * p.j0b))
            v = np.empty(tt.size)
            v[:] = s * (jj * 1e-3 * r_ohm + eta_ct) + eta_base
            if s < 0:
                dip = (0.06 if self.cu_cycle <= 1 else 0.025) * np.exp(-q / (p.u_nuc * qref))
                v -= dip
            elif q[-1] > self.cu_li:
                over = q - self.cu_li
                v += np.minimum(3.0, 0.02 * np.expm1(np.clip(over, 0.0, 0.05) / 0.005))
        else:
            if p.j0a == p.j0b:
                eta_ct = 4 * p.vt * m_act * np.arcsinh(jj / (2 * p.j0a))
            else:
                eta_ct = 2 * p.vt * m_act * (np.arcsinh(jj / (2 * p.j0a)) + np.arcsinh(jj / (2 * p.j0b)))
            # V = s·(j R_Ω + η_ct·S) + η_c with S = 1 + nucleation (start) + arcing (end), as `base + amp·S'`
            amp = s * (float(eta_ct[0]) if const else eta_ct)
            v = np.empty(tt.size)
            v[:] = s * (jj * 1e-3 * r_ohm) + eta_base + amp
            scale = p.u_nuc * qref
            k = int(np.searchsorted(q, 25 * scale))  # exp(-25) ~ 1e-11 beyond
            if k:
                v[:k] += (amp if const else amp[:k]) * a_nuc * np.exp(-q[:k] / scale)  # type: ignore[index]
            if self.q_last:
                k = int(np.searchsorted(q, 0.03 * self.q_last))  # u⁶ < 1e-9 before
                u = q[k:] * (1.0 / self.q_last)
                if q[-1] > self.q_last:
                    np.minimum(u, 1.0, out=u)
                u3 = u * u
                u3 *= u
                u3 *= u3
                u3 *= a_arc
                if const:
                    u3 *= amp
                else:
                    u3 *= amp[k:]  # type: ignore[index]
                v[k:] += u3
            left = p.n_li - self.lost / 2
            if q[-1] > left:  # inventory failure: the stripping electrode runs out of Li
                v += s * np.minimum(3.0, 0.05 * np.expm1(np.clip(q - left, 0.0, 0.5) / 0.05))
            self.lost += (1 - p.ce) * dq_sum / 2
        if k_tr:
            v[:k_tr] += trans
        self.eta_c = eta_end
        # the short clock (§2.4): cumulative exposure against the critical draw
        u0 = self.u_clock
        if const and q[-1] <= qref:  # linear in time: thresholds become times
            life = float(p.life_s(jj, qref)[0])
            self.u_clock = u0 + (float(tt[-1]) - t_start) / life

            def first(level: float) -> int:
                return int(np.searchsorted(tt, t_start + (level - u0) * life))
        else:
            if dt is None:
                dt = np.maximum(np.diff(tt, prepend=t_before), 0.0)
            life_arr = p.life_s(jj, np.maximum(q, qref))
            u_clock = u0 + np.cumsum(dt / life_arr)
            self.u_clock = float(u_clock[-1])

            def first(level: float) -> int:
                return int(np.searchsorted(u_clock, level))
        if p.has_soft and self.t_soft is None:
            i_soft = first(p.u_soft * p.u_crit) if self.u_clock >= p.u_soft * p.u_crit else tt.size
            if i_soft < tt.size:
                self.t_soft, self.soft_connected = float(tt[i_soft]), True
                v[i_soft:] = self._divide(v[i_soft:], jj if jj.size == 1 else jj[i_soft:])
        elif self.t_soft is not None and self.soft_connected:
            v = self._divide(v, jj)
        i_short = first(p.u_crit) if self.u_clock >= p.u_crit else tt.size
        if sand:
            i_short = min(i_short, int(np.searchsorted(tt, self.run_t0 + t_sand + p.t_cross_c / jj[0])))
        if i_short < tt.size:
            self.t_short = float(tt[i_short])
            m = tt.size - i_short
            v[i_short:] = s * (jj if jj.size == 1 else jj[i_short:]) * 1e-3 * p.r_sh * (
                1 + 0.2 * self._noise.standard_normal(m))
            self.eta_c = 0.0
        return v

    def current_at_limit(self, current_a: np.ndarray, v: np.ndarray, v_limit: float) -> np.ndarray:
        """The current (A) that flows when a voltage-limited source holds the cell at `v_limit` where the
        model asked for more (`v`, at the programmed `current_a`): an electrode with no Li left to strip
        (Li|Cu after the plated Li is gone, or an exhausted Li inventory) passes only a leak (R_LEAK);
        otherwise the ohmic share current·v_limit/|v|."""
        i = np.asarray(current_a, dtype=float)
        if self.p.kind == "li_cu":
            exhausted = self.last_sign > 0 and self._cu_li_now() <= 1e-9
        else:
            exhausted = self.q_half > self.p.n_li - self.lost / 2
        if exhausted:
            return np.sign(i) * v_limit / (R_LEAK / self.p.area_cm2)
        return i * v_limit / np.maximum(np.abs(np.asarray(v, dtype=float)), v_limit)

    def _divide(self, v: np.ndarray, jj: np.ndarray) -> np.ndarray:
        """Soft short: a parallel electronic path R_sh,soft: V = V_ec·R_sh/(R_sh + R_app), R_app = V_ec/j."""
        r_app = np.abs(v) / (jj * 1e-3)
        return v * self.p.r_sh_soft / (self.p.r_sh_soft + r_app)

    def mark_rest(self, t: float) -> None:
        """An OCV or EIS reading at `t`: no DC current flowed then, so the cell rests from its last sample
        (or from `t` on) and a current that follows is counted from `t`, not from the last voltage sample."""
        if t <= self.t:
            return
        if self.sign != 0:  # the current stopped after the last sample
            self._begin_run(0, self.t)
            self.sign = 0
        self.eta_c = 0.0 if self.shorted else self.run_eta0 * math.exp(-(t - self.run_t0) / self.p.tau1)
        self.t = t

    # -- AC and OCV -----------------------------------------------------------------------------------

    def r_dc_small(self) -> float:
        """Small-current slope of the DC model in the present state, Ω (not Ω cm²)."""
        return self.p.r_dc_small(self.lost, self._cycle_for_eis()) / self.p.area_cm2

    def _cycle_for_eis(self) -> int:
        return (self.k + 1) // 2 if self.k >= 0 else 0

    def impedance(self, t: float, freq_hz: np.ndarray, *, noise: bool | None = None) -> np.ndarray:
        """Z(f) in Ω of L − R_el − (R_film ∥ CPE) − (R_ct ∥ CPE_dl) − W_s, §3.1: the film arc holds the
        overlayer's R_film (+ SEI + dead Li), the charge-transfer arc m_act·2V_T/j0, so Z(f→0) = the DC
        small-current slope and R_film = n_c·L/σ of this cell."""
        p = self.p
        self.mark_rest(t)
        f = np.asarray(freq_hz, dtype=float)
        jw = 1j * 2 * np.pi * f
        n = self._cycle_for_eis()
        # the activation excess (m_act − 1)·R_ct is kinetics (it multiplies η_ct in the DC model): it belongs
        # to the charge-transfer arc, not to the film's, whose R must stay n_c·L/σ
        rct0 = p.r_ct_base() * p.m_act(n)
        film = p.r_film + p.r_sei + p.r_dead(self.lost)
        grow = 1 - math.exp(-n / 3.0)
        q_film, a_film = p.q_film, p.alpha_film
        q_dl, a_dl = p.q_dl, p.alpha_dl
        if p.layer == "bare":  # roughening over the first cycles (§3.2)
            q_film, q_dl, a_dl = 1e-6 * (1 + 4 * grow), 1e-5 * (1 + 4 * grow), 0.85 - 0.05 * grow
        z = (p.r_el(self.lost) + _rq(film, q_film, a_film, jw) + _rq(rct0, q_dl, a_dl, jw)
             + _ws(p.r_d, p.tau_w, jw)) / p.area_cm2 + jw * p.inductance_h
        for r_par in self._parallel_paths():
            z = z * r_par / (z + r_par)
        if self.noisy if noise is None else noise:
            rel = np.where(f < 0.1, 0.03, 0.005)
            e = self._noise.standard_normal((2, f.size))
            z = z * (1 + rel * (e[0] + 1j * e[1]) / math.sqrt(2))
        return z

    def _parallel_paths(self) -> list[float]:
        a = self.p.area_cm2
        if self.shorted:
            return [self.p.r_sh / a]
        if self.t_soft is not None and self.soft_connected:
            return [self.p.r_sh_soft / a]
        return []

    def ocv(self, t: float) -> float:
        p = self.p
        self.mark_rest(t)
        if self.shorted:
            return 0.0
        if p.kind == "li_cu" and self._cu_li_now() <= 1e-9:
            return CU_OCV
        return p.ocv_offset + self.eta_c * math.exp(-max(0.0, t - self.t) / p.tau1)

    def __repr__(self) -> str:
        p = self.p
        return (f"Cell({p.kind}, layer={p.layer}, coated={p.coated}, {p.electrolyte}/{p.separator}, "
                f"area={p.area_cm2:.3g} cm2, R_film={p.r_film:.3g} ohm cm2, "
                f"j0={p.j0a:.3g}/{p.j0b:.3g} mA/cm2, "
                f"F_layer={p.f_layer:.3g}, half_cycles={self.k + 1}, shorted={self.shorted})")

    def state(self) -> dict[str, Any]:
        p = self.p
        return {
            "kind": p.kind, "layer": p.layer, "electrolyte": p.electrolyte, "separator": p.separator,
            "coated": p.coated, "area_cm2": p.area_cm2, "half_cycles": self.k + 1, "cycles": self._cycle(),
            "q_total_mah_cm2": self.q_total, "q_last_mah_cm2": self.q_last, "lost_mah_cm2": self.lost,
            "l_dead_um": p.l_dead_um(self.lost), "r_el_ohm_cm2": p.r_el(self.lost),
            "r_film_ohm_cm2": p.r_film, "r_dead_ohm_cm2": p.r_dead(self.lost),
            "sigma_film_s_cm": p.sigma_cell,
            "r_dc_small_ohm_cm2": p.r_dc_small(self.lost, self._cycle_for_eis()),
            "j0_ma_cm2": (p.j0a, p.j0b), "j_lim_ma_cm2": p.j_lim, "f_layer": p.f_layer, "ce": p.ce,
            "short_clock": self.u_clock, "short_threshold": p.u_crit, "shorted": self.shorted,
            "t_short_s": self.t_short, "soft_short": self.t_soft is not None, "t_soft_s": self.t_soft,
            "soft_connected": self.soft_connected, "r_short_ohm_cm2": p.r_sh,
            "li_inventory_mah_cm2": p.n_li - self.lost / 2, "cu_li_mah_cm2": self._cu_li_now(),
            "ce_log": list(self.ce_log),
        }
