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


LAYERS: dict[str, LayerType] = {
    "li_in": LayerType(2e-4, 5.0, 0.8, 8.0, 3.0, 0.015, 1e-6, 0.85),
    "li_zn": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 1e-6, 0.85),
    "li_bi": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 1e-6, 0.85),
    "li_al": LayerType(2.7e-5, 2.0, 0.8, 6.0, 2.5, 0.012, 1e-6, 0.85),
    "li_as": LayerType(1e-4, 3.0, 0.8, 6.0, 2.5, 0.012, 1e-6, 0.85),
    "lif": LayerType(2.5e-6, 0.150, 0.6, 6.0, 2.5, 0.012, 2e-7, 0.9, l_cov_um=0.03),
    "li3n": LayerType(2e-4, 1.0, 0.8, 5.0, 3.0, 0.012, 2e-7, 0.9),
    "polymer": LayerType(2e-5, 2.0, 0.8, 4.0, 2.0, 0.010, 1e-7, 0.9),
}


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
