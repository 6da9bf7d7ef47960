"""`lab.campaign(ID)`: a campaign's rows as a notebook sees them (progress, observations, life statistics)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class CampaignHandle:
    """One campaign in the store; every call reads the rows afresh. A campaign started by
    `lab.start_campaign` is driven by its own process (`labctl campaign resume ID`): `process`, `wait()`."""

    store: Any
    id: int
    process: subprocess.Popen | None = field(default=None, compare=False, repr=False)
    log: Path | None = field(default=None, compare=False, repr=False)

    @property
    def state(self) -> str:
        """The campaign's state: running or finished."""
        return str(self.info["state"])

    def wait(self, timeout: float | None = None, poll: float = 0.5) -> dict[str, int]:
        """Wait until the campaign is finished (or `timeout` s pass: TimeoutError) and return its progress.
        A driving process that exits without finishing the campaign raises RuntimeError with its last lines;
        `labctl campaign resume ID` (or `lab.resume_campaign`) goes on from the rows."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.state != "finished":
            if self.process is not None and self.process.poll() is not None and self.state != "finished":
                tail = self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""
                raise RuntimeError(f"campaign {self.id}: its process exited ({self.process.returncode}) "
                                   f"before the campaign finished:\n{tail}")
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"campaign {self.id} not finished after {timeout} s: {self.progress()}")
            time.sleep(poll)
        return self.progress()

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

    def suggestions(self) -> list[dict[str, Any]]:
        """A planner campaign's proposals, oldest first: values, state (proposed, queued, refused, rejected),
        the planner and the sha256 of the observations it was given ([] for a fixed design)."""
        from labctl.campaign import suggestions

        return suggestions.all_suggestions(self.store, self.id)

    def approve(self, suggestion_id: int, values: dict[str, str] | None = None, *,
                actor: str | None = None) -> int | None:
        """Accept a proposal as suggested or with edited `values` (checked by the factor rules, then planned;
        `SuggestionError` otherwise, also when the campaign is finished or cancelled). Returns the request
        queued (a linked campaign: the cell's fabrication), None if the point's plan refused it. The
        campaign's driving process (`labctl campaign resume ID`) runs it."""
        import getpass

        from labctl.campaign import suggestions

        return suggestions.approve(self.store, self.id, suggestion_id, values=values,
                                   actor=actor or getpass.getuser())

    def reject(self, suggestion_id: int, reason: str, *, actor: str | None = None) -> None:
        """Turn a proposal down with a reason (audited); it never runs and does not spend the budget."""
        import getpass

        from labctl.campaign import suggestions

        suggestions.reject(self.store, self.id, suggestion_id, actor=actor or getpass.getuser(),
                           reason=reason)

    def cancel(self, reason: str = "", *, actor: str | None = None) -> dict[str, Any]:
        """Stop the campaign: its queued requests are cancelled and nothing more is queued or approved; runs
        already started go on and are observed when they end (`labctl.campaign.state.cancel`). Returns
        {"cancelled": request ids, "running": run ids left running}; `StoreError` unless it is running."""
        import getpass

        from labctl.campaign import state

        return state.cancel(self.store, self.id, actor=actor or getpass.getuser(), reason=reason)

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


def drive_in_background(store: Any, db_url: str, campaign_id: int, *, station: str | Path | None,
                        cycler: str | Path | None, max_parallel: int, log_dir: Path) -> CampaignHandle:
    """Drive campaign `campaign_id` in its own process (`labctl campaign resume`), so that a notebook cell
    returns at once and the campaign outlives the kernel; its output goes to a log file."""
    from labctl.api.submit import _child_env

    argv = [sys.executable, "-m", "labctl", "campaign", "resume", str(campaign_id),
            "--max-parallel", str(max_parallel)]
    if station is not None:
        argv += ["--station", str(Path(station).resolve())]
    if cycler is not None:
        argv += ["--cycler", str(Path(cycler).resolve())]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"campaign-{campaign_id}-{time.time_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=_child_env(db_url), start_new_session=True)
    return CampaignHandle(store, campaign_id, proc, log)
