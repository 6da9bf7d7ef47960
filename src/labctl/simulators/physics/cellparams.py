"""Cell parameters from the build (electrolyte, separator, which electrodes are coated) and the sample's
overlayer (physics.md §1.7, §2.2-2.4, §3.2), with the per-cell scatter of §2.6, drawn once at assembly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.sample import Sample

C0 = 1e-3  # mol/cm^3 (1 M salt)
COATED_SIDES = {"both": 2, "one": 1, "none": 0}
# cell-to-cell scatter of a film's σ_eff [E]: physics §2.6 says 25 %; seed-results.md's σ bands are ±30 %
# around the quoted value for the median of 5 cells, and a quoted σ is the centre of a lab's own scatter: 15 %
SIGMA_CV = 0.15
KINDS = ("symmetric", "li_cu")


@dataclass
class CellParams:
    """Everything the voltage/impedance model needs (model units: Ω cm², mA cm⁻², mAh cm⁻², V, s)."""

    area_cm2: float
    kind: str
    electrolyte: str
    separator: str
    coated: str
    layer: str
    temp_c: float
    vt: float
    kappa0: float  # S/cm (with the cell's scatter)
    sep_nm_l: float  # N_M·L_sep (cm)
    t_plus: float
    j_lim: float  # mA/cm^2
    tau1: float  # s
    tau_w: float  # s
    r_d: float  # Ω cm^2
    t_sand_c: float  # t_Sand·j² (s mA² cm⁻⁴): t_Sand = t_sand_c / j²
    t_cross_c: float  # t_cross·j (s mA cm⁻²)
    r_film: float  # Ω cm^2, both electrodes as built
    r_sei: float
    j0a: float  # mA/cm^2, electrode 1 (coated if any)
    j0b: float  # electrode 2
    a_act: float
    n_act: float
    a_nuc: float
    a_nuc_first: float
    u_nuc: float
    a_arc0: float
    p_arc: float
    ce: float
    beta_exp: float
    tau_dead: float
    electrolyte_ul: float
    gamma_e: float  # µL per mAh lost
    n_li: float  # Li inventory per electrode, mAh/cm^2
    t_ref_s: float
    n_j: float
    n_q: float
    prot0: float  # protection quality of the cell at zero current (coated fraction × Layer.quality)
    r_f1: float  # Ω cm², film ASR of one coated electrode (drives the Li⁺-depletion factor)
    f_max: float
    sigma_cell: float | None  # S/cm, this cell's film σ (the layer's with the cell's scatter)
    a_t: float
    sigma_meas: float
    q_film: float
    alpha_film: float
    q_dl: float
    alpha_dl: float
    inductance_h: float
    # stochastic draws
    u_crit: float
    r_sh: float
    has_soft: bool
    u_soft: float
    r_sh_soft: float
    ocv_offset: float
    ce_1: float
    ce_ss: float

    def r_ct_base(self) -> float:
        """2V_T·Σ 1/(2 j0) over both electrodes, Ω cm² (the linear charge-transfer resistance, m_act = 1)."""
        return 2 * self.vt * (1 / (2e-3 * self.j0a) + 1 / (2e-3 * self.j0b))

    def m_act(self, n: float) -> float:
        return 1 + self.a_act * math.exp(-n / self.n_act)

    def kappa(self, lost: float) -> float:
        """κ_el after `lost` mAh/cm² became dead Li (electrolyte consumed, §2.3)."""
        v_cons = self.gamma_e * lost * self.area_cm2
        return self.kappa0 * max(0.05, 1 - v_cons / self.electrolyte_ul) ** 1.5

    def r_el(self, lost: float) -> float:
        return self.sep_nm_l / self.kappa(lost) + c.R_HARDWARE

    def l_dead_um(self, lost: float) -> float:
        return self.beta_exp * lost / c.Q_LI_PER_UM

    def r_dead(self, lost: float) -> float:
        return self.l_dead_um(lost) * 1e-4 * self.tau_dead / self.kappa(lost)

    def r_ohm(self, lost: float) -> float:
        return self.r_el(lost) + self.r_film + self.r_sei + self.r_dead(lost)

    def r_dc_small(self, lost: float, n: float) -> float:
        """Small-current slope of V(j): R_Ω + 2V_T·m_act/j0 (both electrodes) + R_D, Ω cm²."""
        return self.r_ohm(lost) + self.m_act(n) * self.r_ct_base() + self.r_d

    def quality(self, j: np.ndarray | float) -> np.ndarray | float:
        """Protection quality P at |j| (mA/cm²): prot0 × exp(−j·R_f1 / V_DEP) (constants.DN_J et seq.)."""
        return self.prot0 * np.exp(-np.asarray(j) * 1e-3 * self.r_f1 / c.V_DEP)

    @property
    def f_layer(self) -> float:
        """F_layer at 1 mA/cm² (for display; the clock uses `life_s`)."""
        return float(1 + (self.f_max - 1) * self.quality(1.0))

    def life_s(self, j: np.ndarray, q: np.ndarray | float) -> np.ndarray:
        """η_life of the Weibull short clock (§2.4), s, for |j| in mA/cm² and half-cycle capacity q: a film
        of quality P multiplies it by 1 + (F_max − 1)·P and flattens its j- and Q-dependence."""
        j = np.asarray(j, dtype=float)
        x = np.minimum(j / self.j_lim, 0.999)
        pq = self.quality(j)
        n_j = self.n_j - c.DN_J * pq
        n_q = self.n_q - c.DN_Q * pq
        return (self.t_ref_s * np.power(j, -n_j) * np.power(np.maximum(q, 1e-3), -n_q)
                * (1 + (self.f_max - 1) * pq) * (1 - x * x) * self.a_t)


def _lognormal(rng: np.random.Generator, median: float, cv_or_sigma: float, *,
               sigma_ln: bool = False) -> float:
    s = cv_or_sigma if sigma_ln else math.sqrt(math.log(1 + cv_or_sigma**2))
    return float(median * math.exp(rng.normal(0.0, s)))


def build_params(sample: Sample, rng: np.random.Generator, *, area_cm2: float, kind: str = "symmetric",
                 electrolyte: str = "carbonate", separator: str = "celgard", coated: str = "both",
                 temp_c: float = 25.0, electrolyte_ul: float = 60.0, scatter: bool = True) -> CellParams:
    """Derive the cell from the build and the sample (§1.7), drawing the per-cell randomness from `rng`."""
    el, sep = c.ELECTROLYTES[electrolyte], c.SEPARATORS[separator]
    best = sample.best() if coated != "none" else None
    n_c = COATED_SIDES[coated] if best is not None else 0
    # how much of the cell is "coated": the coated fraction of the electrodes times the film's coverage, so
    # every coating effect fades continuously into bare Li as the film thins (no jump as L -> 0)
    theta = best.coverage if best is not None else 0.0
    w = n_c / 2 * theta
    sc = (lambda m, cv: _lognormal(rng, m, cv)) if scatter else (lambda m, cv: m)
    vt = c.thermal_voltage(temp_c)
    d = el.diffusivity
    j_lim = 2 * c.F * d * C0 / ((1 - el.t_plus) * sep.macmullin * sep.thickness_cm) * 1e3
    nm_l = sep.macmullin * sep.thickness_cm
    sigma_factor = sc(1.0, SIGMA_CV)
    films = [la for la in sample.layers if la.thickness_um > 0]
    r_film = n_c * sum(la.asr() for la in films) / sigma_factor if n_c else 0.0
    j0_bare = sc(el.j0_bare, 0.15)
    m_j0 = 1 + (best.params.m_j0 - 1) * theta if best is not None else 1.0
    j0a = j0_bare * (m_j0 if n_c >= 1 else 1.0)
    j0b = j0_bare * (m_j0 if n_c == 2 else 1.0)
    prot0 = n_c / 2 * best.quality() if best is not None else 0.0
    r_f1 = sum(la.asr() for la in films) / sigma_factor if n_c else 0.0
    f_max = best.params.f_max if best is not None else 1.0
    sigma_cell = best.sigma * sigma_factor if best is not None and n_c else None
    bare_bt, coat_bt = el.beta_tau_bare, el.beta_tau_coated
    d_ce = best.params.d_ce if best is not None else 0.0
    lerp = lambda bare, coat: bare + (coat - bare) * w  # noqa: E731
    li_um = sample.li_um - sample.li_consumed_um
    a_t = math.exp((25e3 / c.R_GAS) * (1 / c.T_REF_K - 1 / (temp_c + 273.15)))
    if best is not None and n_c:
        q_film, alpha_film = best.params.q_film, best.params.alpha_film
    else:
        q_film, alpha_film = 1e-6, 0.8
    return CellParams(
        area_cm2=area_cm2, kind=kind, electrolyte=electrolyte, separator=separator, coated=coated,
        layer=best.kind if best is not None and n_c else "bare", temp_c=temp_c, vt=vt,
        kappa0=el.kappa / sc(1.0, 0.05), sep_nm_l=nm_l, t_plus=el.t_plus, j_lim=j_lim,
        tau1=sep.porosity * nm_l * sep.thickness_cm / (math.pi**2 * d),
        tau_w=sep.porosity * nm_l * sep.thickness_cm / (4 * d),
        r_d=4 * vt * (1 - el.t_plus) / (j_lim * 1e-3),
        t_sand_c=math.pi * d * (C0 * c.F) ** 2 / (4 * (1e-3 * (1 - el.t_plus)) ** 2),
        t_cross_c=sep.thickness_cm / (1e-3 / c.F * c.LI_MOLAR_VOLUME * 20.0),
        r_film=r_film, r_sei=0.0, j0a=j0a, j0b=j0b,
        a_act=lerp(1.0, 0.3), n_act=3.0, a_nuc=lerp(0.15, 0.05), a_nuc_first=lerp(0.6, 0.3), u_nuc=0.03,
        a_arc0=lerp(0.10, 0.02), p_arc=6.0, ce=min(0.999, el.ce_sym + w * d_ce),
        beta_exp=lerp(bare_bt[0], coat_bt[0]), tau_dead=lerp(bare_bt[1], coat_bt[1]),
        electrolyte_ul=electrolyte_ul, gamma_e=0.2, n_li=li_um * c.Q_LI_PER_UM,
        t_ref_s=el.t_ref_h * 3600, n_j=1.2, n_q=0.4, prot0=prot0, r_f1=r_f1, f_max=f_max,
        sigma_cell=sigma_cell, a_t=a_t, sigma_meas=2e-4,
        q_film=q_film, alpha_film=alpha_film, q_dl=lerp(1e-5, 2e-5), alpha_dl=0.85, inductance_h=0.3e-6,
        u_crit=float((-math.log(1 - rng.random())) ** (1 / 2.0)),
        r_sh=_lognormal(rng, 1.5, 0.5, sigma_ln=True),
        has_soft=bool(rng.random() < lerp(0.5, 0.3)), u_soft=float(rng.uniform(0.6, 0.95)),
        r_sh_soft=_lognormal(rng, 50.0, 1.0, sigma_ln=True), ocv_offset=float(rng.normal(0, 1e-4)),
        ce_1=min(0.999, el.ce_1 + w * d_ce), ce_ss=min(0.999, el.ce_ss + w * d_ce),
    )
