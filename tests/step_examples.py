"""Step examples the step-kind tests share: a valid step of every built-in kind with every field given
(`EXAMPLES`, run on the simulated bench by tests/engine/test_step_kinds.py), and further variants
(`VARIANTS`) that the quantity fuzz (tests/protocol/test_quantity_fuzz.py) mutates as well."""

from __future__ import annotations

from typing import Any

EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    (
        "prepare_bath",
        {
            "bath": "alloy",
            "salt": "InCl3",
            "solvent": "THF",
            "concentration": "0.1 M",
            "volume": "20 mL",
            "temperature": "25 degC",
            "stir": "200 rpm",
            "rate": "5 mL/min",
            "settle": "30 s",
            "water": "10 ppm",
            "override": {"reason": "a test of every field"},
            "label": "bath",
        },
    ),
    ("prepare_bath", {"bath": "solvent", "solvent": "THF", "volume": "20 mL"}),
    (
        "immerse",
        {
            "bath": "alloy",
            "depth": "12 mm",
            "speed": "5 mm/s",
            "time": "30 s",
            "rinse": {"bath": "solvent", "time": "5 s"},
            "dry": "20 s",
        },
    ),
    (
        "dip_coat",
        {
            "bath": "polymer",
            "polymer": "PEO-UPy",
            "solvent": "THF",
            "depth": "10 mm",
            "dip_speed": "2 mm/s",
            "dwell": "5 s",
            "withdrawal_speed": "1 mm/s",
            "drying_time": "10 s",
            "cycles": 2,
            "drying_temperature": "40 degC",
            "override": {"reason": "a test of every field"},
        },
    ),
    (
        "sputter",
        {
            "target": "LiF",
            "gas": "Ar",
            "flow": "20 sccm",
            "pressure": "0.5 Pa",
            "power": "50 W",
            "ramp_rate": "10 W/min",
            "base_pressure": "5e-4 Pa",
            "presputter": "60 s",
            "thickness": "10 nm",
            "max_time": "60 min",
            "tooling": "100 %",
            "density": "2.64 g/cm^3",
            "z_ratio": 0.778,
            "max_reflected": "5 %",
            "on_pressure_fault": "fail",
        },
    ),
    (
        "nitride",
        {
            "gas": "N2",
            "impurity": "0.5 ppm",
            "flow": "80 sccm",
            "pressure": "2 Pa",
            "power": "50 W",
            "ramp_rate": "10 W/min",
            "base_pressure": "5e-4 Pa",
            "time": "60 s",
            "on_pressure_fault": "fail",
        },
    ),
    (
        "operator",
        {
            "message": "Assemble the Li|Li coin cell",
            "timeout": "10 min",
            "cell": {
                "kind": "symmetric",
                "electrolyte": "carbonate",
                "separator": "celgard",
                "coated": "both",
            },
        },
    ),
    ("refill", {"pump": "pump.solvent", "timeout": "10 min"}),
    ("ocv", {"duration": "60 s", "sample_every": "10 s"}),
    (
        "eis",
        {
            "frequencies": "100 kHz..1 Hz",
            "points_per_decade": 5,
            "amplitude": "10 mV",
            "dc": "0 V",
            "ocv": True,
            "settle": "30 s",
        },
    ),
    (
        "cycle_symmetric",
        {
            "current_density": "1 mA/cm^2",
            "capacity": "0.01 mAh/cm^2",
            "cycles": 2,
            "sample_every": "1 s",
            "voltage_limit": "0.5 V",
            "rest": "20 s",
            "temperature": "25 degC",
            "time_cap": 1.2,
            "short_detection": {"threshold": "2 mV", "window": "10 min"},
        },
    ),
    (
        "rate_test",
        {
            "stages": [
                {"current_density": "1 mA/cm^2", "cycles": 1},
                {"current_density": "2 mA/cm^2", "cycles": 1},
            ],
            "capacity": "0.01 mAh/cm^2",
            "sample_every": "1 s",
            "voltage_limit": "1 V",
            "rest": "10 s",
            "temperature": "25 degC",
            "time_cap": 1.2,
        },
    ),
    ("rest", {"duration": "60 s", "sample_every": "5 s"}),
    ("wait", {"duration": "10 s"}),
    ("operator", {"message": "Assemble the Li|Cu coin cell", "cell": {"kind": "li_cu", "coated": "none"}}),
    (
        "coulombic_efficiency",
        {
            "method": "aurbach",
            "current_density": "1 mA/cm^2",
            "capacity": "0.01 mAh/cm^2",
            "cutoff_voltage": "1 V",
            "cycles": 2,
            "plating_voltage_limit": "-1 V",
            "formation_capacity": "0.02 mAh/cm^2",
            "reservoir_capacity": "0.02 mAh/cm^2",
            "sample_every": "1 s",
            "rest": "5 s",
            "temperature": "25 degC",
            "time_cap": 1.2,
        },
    ),
]

def _with(kind: str, **more: Any) -> tuple[str, dict[str, Any]]:
    return kind, {**next(f for k, f in EXAMPLES if k == kind), **more}


#: the simulated bench has no substrate sensor, so a substrate limit is a variant (its plan refuses it);
#: stopping cycling an hour after a short, and a time-based half cycle, are further variants
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    _with("sputter", max_substrate_temperature="60 degC"),
    _with("nitride", max_substrate_temperature="60 degC"),
    ("operator", {"message": "Assemble the cell", "timeout": "10 min"}),
    _with("cycle_symmetric", short_detection={"threshold": "2 mV", "window": "600 s", "stop_after": "1 h"}),
    (
        "cycle_symmetric",
        {"current_density": "1 mA/cm^2", "half_cycle": "1 h", "cycles": 2, "voltage_limit": "0.5 V"},
    ),
]


def named(examples: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """`kind` for a kind's first example, `kind/N` for its N-th."""
    out: dict[str, dict[str, Any]] = {}
    for kind, fields in examples:
        n = sum(1 for k in out if k.split("/")[0] == kind)
        out[kind if n == 0 else f"{kind}/{n + 1}"] = fields
    return out
