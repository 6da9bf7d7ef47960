"""The benches and queue page: runners and workers (`labctl workers`), the stations they serve with each
instrument's lease, and the run requests (`labctl queue list`) with, for each queued one, why it still waits
(`labctl queue show`'s sentence, from the same function)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from labctl.store.models import REQUEST_ENDED, REQUEST_STATES
from labctl.web.pages import render


def _iso(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def leases(store: Any) -> dict[str, dict[str, Any]]:
    """Every instrument lease now, by lease key: run, process, since, heartbeat."""
    from sqlalchemy import select

    from labctl.store.db import reading
    from labctl.store.models import Lease, Run

    q = (select(Lease.instrument, Lease.run_id, Lease.pid, Lease.host, Lease.since, Lease.heartbeat_at,
                Run.state.label("run_state"))
         .outerjoin(Run, Run.id == Lease.run_id).order_by(Lease.instrument))
    with reading(store.engine) as conn:
        rows = conn.execute(q).all()
    return {r.instrument: {"instrument": r.instrument, "run_id": r.run_id, "run_state": r.run_state or "",
                           "pid": r.pid, "host": r.host, "since": _iso(r.since),
                           "heartbeat_at": _iso(r.heartbeat_at)} for r in rows}


def stations(workers: list[dict[str, Any]], held: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The stations the workers serve (one entry per station name), each role's instrument and its lease."""
    out: dict[str, dict[str, Any]] = {}
    for w in workers:
        cap = w["station"] or {}
        st = out.setdefault(w["station_name"], {"name": w["station_name"], "workers": [], "instruments": {},
                                                "simulate": bool(cap.get("simulate"))})
        st["workers"].append({"name": w["name"], "alive": w["alive"]})
        for role, key in sorted((cap.get("roles") or {}).items()):
            st["instruments"][role] = {"role": role, "key": key, "lease": held.get(key)}
    return [{**s, "instruments": list(s["instruments"].values())} for _, s in sorted(out.items())]


def queue_rows(store: Any, show_all: bool) -> list[dict[str, Any]]:
    """Run requests oldest first (open ones unless `show_all`), queued ones with why they wait."""
    from labctl.cli.queue_cmds import request_view
    from labctl.store import requests

    rows = [r for r in requests.listing(store) if show_all or r["state"] not in REQUEST_ENDED]
    for r in rows:
        r["waiting"] = request_view(store, r["id"]).get("waiting", "") if r["state"] == "queued" else ""
    return rows


def register(app: FastAPI) -> None:
    lab = app.state.lab

    @app.get("/benches", response_class=HTMLResponse)
    def benches(request: Request, all: bool = False) -> Response:
        from labctl.store import requests

        workers = requests.workers(lab.store)
        held = leases(lab.store)
        served = {i["key"] for s in stations(workers, held) for i in s["instruments"]}
        return render(request, "benches.html", {
            "workers": workers, "stations": stations(workers, held), "show_all": all,
            "requests": queue_rows(lab.store, all), "states": REQUEST_STATES,
            "other_leases": [v for k, v in held.items() if k not in served],
        })

    @app.get("/queue/{request_id}", response_class=HTMLResponse)
    def request_page(request: Request, request_id: int) -> Response:
        from labctl.cli.queue_cmds import request_view
        from labctl.store.errors import StoreError

        try:
            view = request_view(lab.store, request_id)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc
        return render(request, "request.html", {"r": view})
