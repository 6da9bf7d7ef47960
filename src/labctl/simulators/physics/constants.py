"""Constants and parameter tables of reference/physics.md (§0, §1.1, §1.7, §2.2-2.4, §2.8, §3.2).

Units follow physics.md inside the models (µm, mA cm^-2, mAh cm^-2, Ω cm^2, S cm^-1); the world converts to SI
at its boundary. Every [E] value is an engineering estimate to be calibrated, as physics.md says.
"""

from __future__ import annotations

from dataclasses import dataclass

F = 96485.0  # C/mol
R_GAS = 8.314  # J/(mol K)
T_REF_K = 298.15
V_T = R_GAS * T_REF_K / F  # 25.69 mV at 25 degC
Q_LI_PER_UM = 0.2061  # mAh cm^-2 per µm of dense Li (2061 mAh cm^-3)
UM_PER_MAH_CM2 = 1.0 / Q_LI_PER_UM  # 4.85 µm of Li per mAh cm^-2
LI_MOLAR_VOLUME = 13.0  # cm^3/mol
SCCM_PA_M3_S = 101325.0 * 1e-6 / 60.0  # 1 sccm in Pa m^3/s (0 degC standard)
G = 9.81  # m/s^2


def thermal_voltage(temp_c: float) -> float:
    """RT/F in volts."""
    return R_GAS * (temp_c + 273.15) / F


@dataclass(frozen=True)
class Electrolyte:
    kappa: float  # S/cm
    diffusivity: float  # cm^2/s
    t_plus: float
    j0_bare: float  # mA/cm^2 (apparent)
    t_ref_h: float  # bare median-life scale of the Weibull clock (§2.4)
    ce_sym: float  # CE that feeds dead Li in symmetric cells (§2.3)
    ce_1: float  # Li|Cu first-cycle CE (§2.8)
    ce_ss: float  # Li|Cu steady CE
    beta_tau_bare: tuple[float, float]  # (β_exp, τ_dead) bare
    beta_tau_coated: tuple[float, float]


ELECTROLYTES: dict[str, Electrolyte] = {
    # κ from R_el = N_M L/κ + 0.3 = 1.9 Ω cm² for Celgard (§2.2) -> 7.8 mS/cm
    "carbonate": Electrolyte(7.8e-3, 3e-6, 0.35, 0.8, 250.0, 0.97, 0.88, 0.95, (4.0, 20.0), (2.0, 10.0)),
    "ether": Electrolyte(11.5e-3, 3.5e-6, 0.45, 3.0, 600.0, 0.985, 0.95, 0.985, (2.0, 10.0), (1.5, 8.0)),
}


@dataclass(frozen=True)
class Separator:
    thickness_cm: float
    porosity: float
    macmullin: float


SEPARATORS: dict[str, Separator] = {
    "celgard": Separator(25e-4, 0.55, 5.0),
    "gf": Separator(260e-4, 0.9, 1.5),  # Whatman GF/A
}
R_HARDWARE = 0.3  # Ω cm²


@dataclass(frozen=True)
class LayerType:
    """§1.7 default parameter set of one overlayer kind (L in µm, σ in S/cm)."""

    sigma_eff: float
    l_opt_um: float
    s: float
    f_max: float
    m_j0: float
    d_ce: float
    q_film: float  # S s^α cm^-2 (§3.2)
    alpha_film: float
    l_cov_um: float = 0.3


# Calibration against shared/reference/seed-results.md (which wins over physics.md §1.7's table) [E]:
# - F_max per layer sets the quoted lives (Li–In 1400 h at 2 mA/cm², Li₃N 500 h at 0.5, PEO-UPy 1000 h at
#   5 mA/cm² / 10 mAh/cm², PDMS 800 h at 1) together with the flux-homogenising exponents below;
# - Li–Al: a thin alloy film (L_opt 1 µm) with fast Li exchange (M_j0 4): the article's "excellent rate";
# - q_film of wetted, porous layers (alloy/LiCl, plasma Li₃N, swollen polymers): a pore-wall/grain-boundary
#   capacitance of 3–10 µS sᵅ cm⁻² that puts their arc at 10–60 kHz, inside the EmStat4's 200 kHz window; the
#   geometric ε_r ε₀/L of a dense film (LiF) stays at 0.2 µF cm⁻² (its arc merges into R_el, §3.2's pitfall).
LAYERS: dict[str, LayerType] = {
    "li_in": LayerType(2e-4, 5.0, 0.8, 10.5, 3.0, 0.015, 3e-6, 0.9),
    "li_zn": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 3e-6, 0.9),
    "li_bi": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 3e-6, 0.9),
    "li_al": LayerType(2.7e-5, 1.0, 0.8, 6.0, 4.0, 0.012, 3e-6, 0.9),
    "li_as": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 3e-6, 0.9),
    "lif": LayerType(2.5e-6, 0.150, 0.6, 6.0, 2.5, 0.012, 2e-7, 0.9, l_cov_um=0.03),
    "li3n": LayerType(2e-4, 1.0, 0.8, 3.0, 3.0, 0.012, 1e-5, 0.9),
    "polymer": LayerType(2e-5, 2.0, 0.8, 4.0, 2.0, 0.010, 1e-6, 0.9),
    "peo_upy": LayerType(2.37e-5, 2.0, 0.8, 26.0, 2.0, 0.012, 1e-6, 0.9),
    "pvdf_beta": LayerType(5e-5, 1.5, 0.8, 8.0, 2.5, 0.015, 1e-6, 0.9),
    "pvdf_alpha": LayerType(5e-6, 1.5, 0.8, 3.0, 1.5, 0.005, 1e-6, 0.9),
    "pdms": LayerType(3e-4, 2.0, 0.8, 4.0, 2.0, 0.010, 1e-6, 0.9),
}
# Life of a protected cell (§2.4 clock, [E]): a film of protection quality P ∈ [0, 1] (coverage³ × thickness
# window × crack × Li⁺-depletion factor exp(−j·R_f1/V_DEP)) multiplies η_life by 1 + (F_max − 1)·P and makes
# it less sensitive to current and capacity (n_j − DN_J·P, n_Q − DN_Q·P): a uniform flux removes the hot
# spots whose growth the j- and Q-exponents describe. R_f1 = L/σ of one electrode: at equal L and coverage,
# higher σ lives longer (seed-results.md's central mechanism).
DN_J = 1.0
DN_Q = 0.3
V_DEP = 0.1  # V: film drop per electrode that costs an e-fold of the protection


@dataclass(frozen=True)
class Solvent:
    """Dip-coating solvent (§1.2): surface tension N/m, density kg/m^3, evaporation flux kg m^-2 s^-1."""

    surface_tension: float
    density: float
    evaporation: float


SOLVENTS: dict[str, Solvent] = {
    "thf": Solvent(0.0264, 889.0, 3e-4),
    "dmf": Solvent(0.037, 944.0, 1e-5),
    "dmac": Solvent(0.036, 937.0, 1e-5),
    "hexane": Solvent(0.018, 655.0, 8e-4),
    "toluene": Solvent(0.028, 867.0, 2e-4),
}


@dataclass(frozen=True)
class Polymer:
    """A dip-coating polymer as a recipe names it: the layer it makes (a `LAYERS` key), the solution's
    viscosity (Pa s) and solids volume fraction, and the solvent it is usually cast from."""

    layer: str
    viscosity: float
    solids_fraction: float
    solvent: str


# §1.2 polymer table [E]; PVDF's phase is the recipe's: β from slow, low-temperature (< 70 °C) drying [K].
POLYMERS: dict[str, Polymer] = {
    "peo-upy": Polymer("peo_upy", 0.05, 0.045, "thf"),
    "pvdf-beta": Polymer("pvdf_beta", 0.1, 0.027, "dmf"),
    "pvdf-alpha": Polymer("pvdf_alpha", 0.1, 0.027, "dmf"),
    "pdms": Polymer("pdms", 0.005, 0.07, "hexane"),
    "polymer": Polymer("polymer", 0.02, 0.03, "thf"),
}
PVDF_BETA_MAX_DRYING_C = 70.0


@dataclass(frozen=True)
class Salt:
    """Immersion-alloying precursor (§1.1): k_B (µm² s⁻¹ M⁻¹), layer kind, Ω_M (cm³/mol of M reacted)."""

    k_b: float
    layer: str
    omega_cm3_mol: float


SALTS: dict[str, Salt] = {
    "in": Salt(0.4, "li_in", 134.0),
    "zn": Salt(0.4, "li_zn", 63.0),
    "bi": Salt(0.3, "li_bi", 122.0),
    "al": Salt(0.2, "li_al", 85.0),
    "as": Salt(0.4, "li_as", 100.0),
}
IMMERSION_A_UM = 0.2
IMMERSION_M = 1.0
IMMERSION_EA = 35e3  # J/mol
IMMERSION_T_IND_S = 5.0
LI_PER_LAYER = 0.6  # µm of Li consumed per µm of alloy layer

# LiF sputtering (§1.5) and Li3N (§1.6)
LIF_DENSITY = 2640.0  # kg/m^3
LIF_Z_RATIO = 0.778
K_SPUTTER_NM_MIN = 0.55  # per W cm^-2 at d_ref
D_REF_M = 0.08
P0_PA = 0.5
KP_THERMAL_UM2_H = 0.03  # N2 at 1 atm, RT
PLASMA_KP_GAIN = 50.0  # × at 50 W, ∝ P^0.75


def salt_key(salt: str) -> str:
    """'InCl3' -> 'in'; raises KeyError for an unknown precursor."""
    s = salt.strip().lower()
    for key in sorted(SALTS, key=len, reverse=True):
        if s.startswith(key):
            return key
    raise KeyError(salt)
