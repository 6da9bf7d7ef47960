"""`lab.campaign(ID)`: a campaign's rows as a notebook sees them (progress, observations, life statistics)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CampaignHandle:
    """One campaign in the store; every call reads the rows afresh."""

    store: Any
    id: int

    @property
    def info(self) -> dict[str, Any]:
        """The campaign row: name, file text and hash, design kind, recorded seed, state, times."""
        from labctl.campaign import state

        return state.get(self.store, self.id)

    @property
    def factors(self) -> list[str]:
        """The factor names, in the order of the recorded campaign file."""
        return parse_campaign_factors(self.info["text"])

    def progress(self) -> dict[str, int]:
        """Counts: points, refused by plan, unsubmitted, pending, failed, censored, excluded."""
        from labctl.campaign import state

        return state.progress(self.store, self.id)

    def observations(self) -> pd.DataFrame:
        """One row per cell in run order: factor values, status (failed/censored/excluded/pending/refused by
        plan), hours, reason, run and request ids and the run's headline metrics."""
        from labctl.campaign import observations, state

        return observations.frame(state.points(self.store, self.id), self.factors)

    def lineage(self) -> pd.DataFrame:
        """A linked campaign's cells, one row each in run order: sample -> fabrication request and run ->
        cell (who assembled it, automatically in a dry run) -> test request, run and channel, state and reason
        (empty for a campaign whose one protocol does both)."""
        import pandas as pd

        from labctl.campaign import lineage

        rows = [{**{k: v for k, v in r.items() if k != "assembly"}, "seq": r["seq"] + 1,
                 "assembled_by": r["assembly"].get("acknowledged_by"),
                 "assembled_auto": r["assembly"].get("auto")} for r in lineage.lineage(self.store, self.id)]
        cols = ["seq", "sample_id", "fabrication_request", "fabrication_run", "cell_id", "assembled_by",
                "assembled_auto", "test_request", "test_run", "channel", "state", "reason"]
        return pd.DataFrame(rows, columns=cols).set_index("seq")

    def lives(self) -> pd.DataFrame:
        """Per condition: counts, Kaplan–Meier median, Weibull shape, median life and its 95 % interval."""
        from labctl.campaign import survival

        return survival.by_condition(self.observations(), self.factors)

    def report(self, out: str | Path) -> dict[str, Path]:
        """Write the KM figure and the Markdown report into `out`."""
        from labctl.campaign import report

        return report.write(self.info, self.observations(), self.factors, Path(out))


def parse_campaign_factors(text: str) -> list[str]:
    """The factor names of a recorded campaign text, in file order (read with the safe loader)."""
    from labctl.protocol.safeyaml import load

    data = load(text, "<recorded campaign>").data
    factors = data.get("factors") if isinstance(data, dict) else None
    return list(factors) if isinstance(factors, dict) else []
