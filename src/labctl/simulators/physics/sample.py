"""The sample (a Li foil) and the overlayers fabrication leaves on it;
the §1.7 mapping onto cell parameters."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from labctl.simulators.physics import constants as c
from labctl.simulators.physics.fabrication import coverage


@dataclass
class Layer:
    """One overlayer: `kind` is a key of `constants.LAYERS`; thickness in µm, σ in S/cm."""

    kind: str
    thickness_um: float
    cv: float = 0.2  # within-sample thickness CV
    sigma_eff: float | None = None  # S/cm; None: the kind's default
    cracked: bool = False
    source: str = ""
    wet_until: float | None = None  # dip-coated films: world time at which drying completes

    @property
    def params(self) -> c.LayerType:
        return c.LAYERS[self.kind]

    @property
    def sigma(self) -> float:
        return self.sigma_eff if self.sigma_eff is not None else self.params.sigma_eff

    @property
    def coverage(self) -> float:
        return coverage(self.thickness_um, self.params.l_cov_um)

    def asr(self) -> float:
        """Film ASR of one electrode, Ω cm² (L/σ)."""
        return self.thickness_um * 1e-4 / self.sigma

    def quality(self) -> float:
        """Protection quality at zero current, ∈ [0, 1]: coverage³ × the thickness window around L_opt ×
        (0.3 if cracked) (§1.7); the cell multiplies in the Li⁺-depletion factor of its current."""
        p = self.params
        if self.thickness_um <= 0:
            return 0.0
        shape = math.exp(-math.log(self.thickness_um / p.l_opt_um) ** 2 / (2 * p.s**2))
        return self.coverage**3 * shape * (0.3 if self.cracked else 1.0)

    def protection(self, j_ma_cm2: float = 1.0) -> float:
        """F_layer of §1.7 at `j_ma_cm2`, with the Li⁺-depletion factor exp(−j·L/σ / V_DEP)."""
        dep = math.exp(-j_ma_cm2 * 1e-3 * self.asr() / c.V_DEP) if self.thickness_um > 0 else 1.0
        return 1 + (self.params.f_max - 1) * self.quality() * dep

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(sd_um=self.thickness_um * self.cv, coverage=self.coverage, sigma_eff=self.sigma,
                 protection=self.protection(), asr_ohm_cm2=self.asr())
        return d


@dataclass
class Sample:
    """Li foil: its thickness (µm), the Li consumed by fabrication (µm) and its overlayers."""

    li_um: float = 250.0
    li_consumed_um: float = 0.0
    layers: list[Layer] = field(default_factory=list)

    def layer(self, kind: str) -> Layer | None:
        return next((la for la in self.layers if la.kind == kind), None)

    def add_layer(self, layer: Layer) -> Layer:
        self.layers.append(layer)
        return layer

    def record(self) -> dict[str, Any]:
        best = self.best()
        return {
            "li_um": self.li_um,
            "li_consumed_um": self.li_consumed_um,
            "layers": [la.record() for la in self.layers if la.thickness_um > 0],
            "layer": best.kind if best else "bare",
            "thickness_um": best.thickness_um if best else 0.0,
            "sd_um": best.thickness_um * best.cv if best else 0.0,
            "coverage": best.coverage if best else 0.0,
            "sigma_eff_s_cm": best.sigma if best else None,
            "cracked": best.cracked if best else False,
            "film_asr_ohm_cm2": sum(la.asr() for la in self.layers if la.thickness_um > 0),
            # the same in SI, for consumers that keep SI (DESIGN: m, S/m)
            "thickness_m": (best.thickness_um if best else 0.0) * 1e-6,
            "thickness_sd_m": (best.thickness_um * best.cv if best else 0.0) * 1e-6,
            "sigma_eff_S_m": best.sigma * 100.0 if best else None,
        }

    def best(self) -> Layer | None:
        """The layer that protects most (it sets F_layer, M_j0, ΔCE and the dead-Li set)."""
        real = [la for la in self.layers if la.thickness_um > 0]
        return max(real, key=lambda la: la.protection()) if real else None
