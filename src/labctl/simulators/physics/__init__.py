"""The physical world of dry runs (reference/physics.md): `PhysicalWorld` implements `WorldPort`.

Modules: `constants` (tables), `fabrication` (pure §1 models), `sample` (overlayers, §1.7), `bath`, `stage`,
`chamber`, `cellparams` + `cell` (§2-3), `world` (the coupling), `station` (building a world from a station).
"""

from labctl.simulators.physics.bath import BathSpec, PolymerSolution, StockSpec
from labctl.simulators.physics.chamber import ChamberSpec
from labctl.simulators.physics.sample import Layer, Sample
from labctl.simulators.physics.station import config_for_station, world_for_station
from labctl.simulators.physics.world import PhysicalWorld, WorldConfig, WorldConfigError

__all__ = [
    "BathSpec", "ChamberSpec", "Layer", "PhysicalWorld", "PolymerSolution", "Sample", "StockSpec",
    "WorldConfig", "WorldConfigError", "config_for_station", "world_for_station",
]
