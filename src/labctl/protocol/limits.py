"""Process and cycler limits of reference/physics.md (sections 1.8 and 2.10) as data.

A value outside `soft` is a warning; outside `hard` an error. Values are in internal units (see models).
Which step fields reach which instrument limit is declared by each step kind (`INSTRUMENT_LIMITS` in
`labctl.steps.<kind>`). Hazards (AsCl3, solvents that react with Li)
need an `override:` with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INF = math.inf
MAH_CM2 = 36000.0  # C/m^2 per mAh/cm^2
MA_CM2 = 10.0  # A/m^2 per mA/cm^2


@dataclass(frozen=True)
class ProcessLimit:
    """`field` of step `kind` (or a derived quantity, e.g. `power_density`), soft and hard [low, high]."""

    kind: str
    field: str
    soft: tuple[float, float]
    hard: tuple[float, float]
    unit: str  # display unit kind (labctl.units.KINDS) or "" for ratios
    reason: str


L = ProcessLimit
PROCESS_LIMITS: list[ProcessLimit] = [
    L(
        "prepare_bath",
        "temperature",
        (-INF, 60.0),
        (-INF, 100.0),
        "temperature",
        "Li handling: ≤ 60 °C, > 100 °C abort",
    ),
    L("dip_coat", "drying_temperature", (-INF, 60.0), (-INF, 100.0), "temperature", "Li handling: ≤ 60 °C"),
    L(
        "prepare_bath",
        "concentration",
        (10.0, 500.0),
        (0.0, 1000.0),
        "concentration",
        "MCl_x 0.01–0.5 M; > 1 M exotherm, thick porous layers",
    ),
    L("prepare_bath", "water", (0.0, 20e-6), (0.0, 50e-6), "fraction", "solvent water ≤ 20 ppm, > 50 ppm"),
    L(
        "immerse",
        "time",
        (1.0, 1800.0),
        (0.0, 7200.0),
        "duration",
        "immersion 1 s – 30 min; > 2 h over-reaction",
    ),
    L(
        "dip_coat",
        "withdrawal_speed",
        (1e-4, 1e-2),
        (1e-5, 2e-2),
        "speed",
        "withdrawal 0.1–10 mm/s; < 0.01 or > 20 mm/s (Faustini range)",
    ),
    L(
        "dip_coat",
        "dwell",
        (1.0, 600.0),
        (0.0, 3600.0),
        "duration",
        "dwell 1–600 s; > 1 h Li–solvent contact",
    ),
    L(
        "sputter",
        "power_density",
        (0.0, 2.5e4),
        (0.0, 5e4),
        "",
        "LiF bonded ≤ 2.5 W/cm², > 5 W/cm² (> 1.5 unbonded)",
    ),
    L(
        "sputter",
        "ramp_density",
        (0.0, 0.25e4 / 60),
        (0.0, 1e4 / 60),
        "",
        "ramp ≤ 0.25 W/cm²/min, > 1 W/cm²/min thermal shock",
    ),
    L("sputter", "max_reflected", (0.0, 0.05), (0.0, 0.20), "fraction", "reflected < 5 %, > 20 % trip"),
    L("sputter", "pressure", (0.2, 1.3), (0.0, INF), "pressure", "Ar 0.2–1.3 Pa (1.5–10 mTorr)"),
    L("sputter", "base_pressure", (0.0, 7e-4), (0.0, 1e-3), "pressure", "base ≤ 7e-4 Pa; > 1e-3 Pa refuse"),
    L(
        "sputter",
        "max_substrate_temperature",
        (-INF, 60.0),
        (-INF, 80.0),
        "temperature",
        "T_substrate ≤ 60 °C, > 80 °C RF off",
    ),
    L("sputter", "thickness", (10e-9, 1000e-9), (0.0, INF), "length", "LiF film 10–1000 nm"),
    L("nitride", "impurity", (0.0, 1e-6), (0.0, 5e-6), "fraction", "O2+H2O in N2 < 1 ppm; > 5 ppm refuse"),
    L("nitride", "power", (20.0, 200.0), (0.0, INF), "power", "N2 plasma 20–200 W"),
    L("nitride", "pressure", (10.0, 100.0), (0.0, INF), "pressure", "N2 plasma 10–100 Pa"),
    L("nitride", "time", (30.0, 1800.0), (0.0, 3600.0), "duration", "N2 plasma 0.5–30 min; > 60 min"),
    L("nitride", "max_substrate_temperature", (-INF, 60.0), (-INF, 80.0), "temperature", "T_sub > 80 °C"),
    L("nitride", "base_pressure", (0.0, 7e-4), (0.0, 1e-3), "pressure", "base ≤ 7e-4 Pa; > 1e-3 Pa refuse"),
]
for _k in ("cycle_symmetric", "rate_test", "coulombic_efficiency"):
    PROCESS_LIMITS += [
        L(
            _k,
            "current_density",
            (0.05 * MA_CM2, 20 * MA_CM2),
            (0.0, 60 * MA_CM2),
            "current_density",
            "0.05–20 mA/cm²; > 60 mA/cm² (the article's upper bound)",
        ),
        L(
            _k,
            "capacity",
            (0.0, 10 * MAH_CM2),
            (0.0, 60 * MAH_CM2),
            "areal_capacity",
            "≤ 10 mAh/cm² per half-cycle; > 60 mAh/cm² inventory failure",
        ),
        L(
            _k,
            "temperature",
            (24.0, 26.0),
            (-INF, 45.0),
            "temperature",
            "25 ± 1 °C chamber; cell > 45 °C abort",
        ),
        L(_k, "time_cap", (1.0, 1.2), (1.0, 1.5), "", "step-time cap 1.2 × Q/j; 1.5 × nominal at most"),
    ]
PROCESS_LIMITS += [
    L("cycle_symmetric", "voltage_limit", (0.0, 0.5), (0.0, 1.0), "voltage", "Li|Li window ±0.5 V; ±1.0 V"),
    L("rate_test", "voltage_limit", (0.0, 0.5), (0.0, 1.0), "voltage", "Li|Li window ±0.5 V; ±1.0 V"),
    L(
        "coulombic_efficiency",
        "cutoff_voltage",
        (0.5, 1.0),
        (0.5, 1.0),
        "voltage",
        "Li|Cu strip cut-off 0.5–1.0 V",
    ),
    L(
        "coulombic_efficiency",
        "plating_voltage_limit",
        (-1.0, 0.0),
        (-1.0, 0.0),
        "voltage",
        "Li|Cu window −1..+1 V",
    ),
    L("eis", "amplitude", (5e-3, 10e-3), (0.0, 20e-3), "voltage", "EIS 5–10 mV rms; > 20 mV nonlinear"),
]
del L, _k

SAFE_SOLVENTS = {
    "thf",
    "2-methf",
    "me-thf",
    "dme",
    "dol",
    "diglyme",
    "hexane",
    "heptane",
    "cyclohexane",
    "toluene",
    "dmc",
    "ec",
    "dec",
    "ec/dec",
    "ec/dmc",
    "dol/dme",
}
#: lower-case solvent names that react with Li, and why.
HAZARDOUS_SOLVENTS: dict[str, str] = {
    **{
        s: "protic solvent (reacts with Li)"
        for s in (
            "water",
            "h2o",
            "methanol",
            "meoh",
            "ethanol",
            "etoh",
            "isopropanol",
            "ipa",
            "2-propanol",
            "propanol",
            "butanol",
            "acetic acid",
            "alcohol",
        )
    },
    **{
        s: "halogenated solvent (reacts violently with Li)"
        for s in ("dichloromethane", "ch2cl2", "dcm", "chloroform", "chcl3", "carbon tetrachloride", "ccl4")
    },
    **{s: "ketone (reacts with Li)" for s in ("acetone", "mek", "butanone")},
    **{s: "reacts with Li" for s in ("acetonitrile", "mecn", "acn", "dmf", "dmso", "nmp", "dmac")},
}
SAFE_PRECURSORS = {"incl3", "zncl2", "bicl3", "alcl3"}
HAZARDOUS_PRECURSORS = {"ascl3": "AsCl3 is toxic: toxic-material override required"}


def solvent_hazard(name: str | None) -> str | None:
    """Why `name` (a solvent or solvent mix) needs an override on Li, or None."""
    if not name:
        return None
    low = name.lower()
    for part in [low, *low.replace("+", "/").replace(",", "/").split("/")]:
        part = part.strip()
        if part in HAZARDOUS_SOLVENTS:
            return f"{name}: {HAZARDOUS_SOLVENTS[part]}"
    return None


def precursor_hazard(salt: str | None) -> str | None:
    if not salt:
        return None
    return HAZARDOUS_PRECURSORS.get(salt.lower())
