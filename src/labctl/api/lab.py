"""`labctl.connect(db)` -> `Lab`: the store as a notebook (and the CLI, and the web app) sees it."""

from __future__ import annotations

import getpass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.api.protocol import Protocol
from labctl.api.runs import RunHandle, _frame, _times
from labctl.api.submit import Submission, close_dispatchers, submit_request

if TYPE_CHECKING:
    import pandas as pd

    from labctl.api.campaign import CampaignHandle
    from labctl.store import Store, VerifyResult


class Lab:
    """A connection to one store: query runs, open one, submit new ones. Close it (or use `with`)."""

    def __init__(self, store: Store, db_url: str) -> None:
        self.store, self._db_url = store, db_url
        self._submissions: list[Submission] = []
        self._dispatchers: dict = {}  # (station path, simulate) -> the dispatcher that starts this lab's runs

    @property
    def url(self) -> str:
        """The store's URL, password hidden."""
        return str(self.store.url)

    def __repr__(self) -> str:
        return f"<labctl lab {self.url}>"

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store (submitted runs go on in their own processes)."""
        for s in self._submissions:
            s.close()
        close_dispatchers(self.store, self._dispatchers)
        self.store.close()

    def runs(
        self,
        state: str | None = None,
        sample: str | None = None,
        protocol: str | None = None,
        since: str | datetime | float | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """`labctl runs list` as a DataFrame indexed by run id, oldest first; `protocol` matches a substring
        of the protocol's name, `since` is an ISO date/time (UTC) or a datetime; times are UTC timestamps."""
        from labctl.store.queries import RUN_SUMMARY

        rows = self.store.runs(state=state, protocol=protocol, sample=sample, since=since, limit=limit)
        df = _times(_frame(rows, (*RUN_SUMMARY, "n_steps")), ["created_at", "started_at", "ended_at",
                                                             "heartbeat_at"])
        return df.set_index("id")

    def run(self, run_id: int) -> RunHandle:
        """Run `run_id`: provenance, steps, events, io, data(stream), report(), verify()."""
        return RunHandle(self.store, run_id)

    def campaign(self, campaign_id: int) -> CampaignHandle:
        """Campaign `campaign_id`: progress(), observations() (a DataFrame), lives(), report(out)."""
        from labctl.api.campaign import CampaignHandle
        from labctl.campaign import state

        state.get(self.store, campaign_id)  # StoreError now if there is none
        return CampaignHandle(self.store, campaign_id)

    def start_campaign(self, path: str | Path, *, simulate: bool = True, station: str | Path | None = None,
                       cycler: str | Path | None = None, max_parallel: int = 1) -> CampaignHandle:
        """`labctl campaign run FILE`: load, design and plan the campaign file (file:line:col errors as
        `CampaignFileError`), record it and queue its planned cells, then drive it in its own process and
        return at once; follow it with `.progress()`, `.observations()`, `.wait()`."""
        from labctl.campaign.drive import start

        cid = start(self.store, path, simulate=simulate, actor=getpass.getuser())
        return self.resume_campaign(cid, station=station, cycler=cycler, max_parallel=max_parallel)

    def resume_campaign(self, campaign_id: int, *, station: str | Path | None = None,
                        cycler: str | Path | None = None, max_parallel: int = 1) -> CampaignHandle:
        """`labctl campaign resume ID` in its own process: go on from the rows (nothing submitted twice)."""
        from labctl.api.campaign import drive_in_background
        from labctl.queue.dispatch import spool_dir

        self.campaign(campaign_id)  # StoreError now if there is none
        return drive_in_background(self.store, self._db_url, campaign_id, station=station, cycler=cycler,
                                   max_parallel=max_parallel, log_dir=spool_dir())

    def compare(self, runs: list[int | RunHandle]) -> pd.DataFrame:
        """`labctl runs compare`: headline metrics side by side (overpotential at cycle 10 and 100 h, growth,
        hours to failure and mode, R_film, sigma), one row per run, indexed by run id."""
        import pandas as pd

        from labctl.analysis import report

        ids = [r.id if isinstance(r, RunHandle) else int(r) for r in runs]
        rows = report.compare_rows([report.load_run(self.store, i) for i in ids])
        return pd.DataFrame(rows, columns=list(report.COMPARE_COLUMNS)).set_index("run")

    def verify(self) -> VerifyResult:
        """The whole audit chain (`labctl audit verify --all`)."""
        return self.store.verify(None)

    def submit(
        self,
        protocol: str | Path | Protocol,
        params: dict[str, Any] | None = None,
        *,
        station: str | Path | None = None,
        simulate: bool = True,
        seed: int | None = None,
        realtime: bool = False,
        sample: str | None = None,
        operator: str | None = None,
    ) -> Submission:
        """Queue a run of `protocol` with `params` (`labctl.queue.submit`, as `labctl submit`), start it in a
        `labctl run` process of its own and return at once.

        A dry run (`simulate=True`, the default) runs on the simulated station unless `station` is given, on
        the virtual clock unless `realtime`; `seed` makes it reproducible. The protocol is loaded and checked
        here first, so a bad file raises `FileProblemsError` in the caller, not in a log."""
        if isinstance(protocol, Protocol):  # its overrides from `Protocol.load(path, **params)` carry over
            params = {**protocol.loaded.overrides, **(params or {})}
            loaded = protocol.with_params(**params) if params else protocol  # checked here, as below
        else:
            params = dict(params or {})
            loaded = Protocol.load(protocol, **params)
        who = operator or getpass.getuser()
        sub = submit_request(self.store, self._dispatchers, loaded.path, params, station=station,
                             simulate=simulate, seed=seed, realtime=realtime, sample=sample, operator=who)
        self._submissions.append(sub)
        return sub


def connect(db: str | None = None) -> Lab:
    """Open the store at `db`: a SQLite file or a database URL; None -> $LABCTL_DB -> ./labctl.db (the
    resolution of `--db`). The schema is migrated to the current version, as any labctl command does."""
    from labctl.store import Store
    from labctl.store.db import resolve_url

    url = resolve_url(db)
    return Lab(Store.open(url), url)
