"""The runs pages and endpoints: runs list, run page, plot series (JSON), live points (SSE), EIS sweeps
(JSON), the run report's figures, transcript, audit verify, control commands, CSV/Parquet export. Each reads
or writes through `labctl.api` and the store's public calls, as the CLI does (control goes through
`Store.post_control`, audited, with the web user's name as actor).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from labctl.store.errors import StoreError
from labctl.store.models import CONTROL_COMMANDS, RUN_STATES
from labctl.web import data, figures
from labctl.web.app import require_csrf, require_role
from labctl.web.downsample import window
from labctl.web.live import feeds as live_feeds

SORTABLE = ("id", "protocol_name", "state", "sample_id", "operator", "mode", "created_at", "ended_at")
LIVE_PERIOD_S = 1.0  # how often a live view asks the store for new points (the page shows them within 2 s)
LIVE_MAX_POINTS = 4000  # per message: a backlog is sent downsampled, the next refetch fills it in


def render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    base = {"user": request.state.user, "csrf": request.state.csrf}
    return request.app.state.templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)


def runs_rows(lab: Any, f: dict[str, str], sort: str, desc: bool) -> list[dict[str, Any]]:
    """The runs table: `lab.runs` filtered by state, sample, protocol (substring), operator, date range."""
    import pandas as pd

    try:
        df = lab.runs(state=f["state"] or None, sample=f["sample"] or None, protocol=f["protocol"] or None,
                      since=f["since"] or None)
        if f["until"]:
            end = pd.Timestamp(f["until"], tz="UTC")
            if len(f["until"]) <= 10:  # a date: the whole day
                end += pd.Timedelta(days=1)
            df = df[df["created_at"] < end]
    except (StoreError, ValueError) as exc:
        raise HTTPException(400, f"filter: {exc}") from exc
    if f["operator"]:
        df = df[df["operator"] == f["operator"]]
    df = df.reset_index()
    df = df.sort_values(sort, ascending=not desc, kind="stable", na_position="last")
    rows = []
    for r in df.to_dict("records"):
        for k in ("created_at", "started_at", "ended_at"):
            r[k] = "" if pd.isna(r[k]) else r[k].strftime("%Y-%m-%d %H:%M:%S")
        rows.append(r)
    return rows


def register(app: FastAPI) -> None:
    lab = app.state.lab

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(
        request: Request, state: str = "", sample: str = "", protocol: str = "", operator: str = "",
        since: str = "", until: str = "", sort: str = "id", desc: bool = True,
    ) -> Response:
        if state and state not in RUN_STATES:
            raise HTTPException(400, f"state {state!r}: one of {', '.join(RUN_STATES)}")
        if sort not in SORTABLE:
            raise HTTPException(400, f"sort {sort!r}: one of {', '.join(SORTABLE)}")
        f = {"state": state, "sample": sample, "protocol": protocol, "operator": operator, "since": since,
             "until": until}
        rows = runs_rows(lab, f, sort, desc)
        return render(request, "runs.html", {"rows": rows, "f": f, "sort": sort, "desc": desc,
                                              "states": RUN_STATES, "sortable": SORTABLE})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_page(request: Request, run_id: int) -> Response:
        run = data.open_run(lab, run_id)
        prov = run.provenance
        streams = run.streams.to_dict("records")
        events = run.events
        ev = [{"seq": e["seq"], "t": e["t"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "kind": e["kind"],
               "actor": e["actor"], "data": json.dumps(e["data"], ensure_ascii=False, default=str)}
              for e in events.to_dict("records")]
        has_plot = any(s["stream"] in data.VOLTAGE_STREAMS for s in streams) or not run.done
        return render(request, "run.html", {
            "run": run, "prov": prov, "state": prov["state"], "done": run.done,
            "steps": data.steps_with_units(run),
            "events": ev, "streams": streams, "has_plot": has_plot, "commands": CONTROL_COMMANDS,
            "io": data.transcript_page(lab, run_id, None, 1),
            "has_eis": any(s["stream"] == "eis" for s in streams), "parquet": parquet_available(),
            "parquet_missing": PARQUET_MISSING,
            "params": json.dumps(prov["parameters"], ensure_ascii=False, default=str),
            "versions": json.dumps(prov["versions"], ensure_ascii=False, default=str),
        })

    @app.get("/runs/{run_id}/series")
    def series(run_id: int, width: int = Query(800, ge=10, le=100_000), t0: float | None = None,
               t1: float | None = None) -> JSONResponse:
        run = data.open_run(lab, run_id)
        t, v = data.voltage_series(lab, run)
        w = window(t, v, width, t0, t1)
        return JSONResponse({**w.as_json(), "run": run_id, "x_unit": "s", "y_unit": "V",
                             "t_min": float(t[0]) if t.size else None,
                             "t_max": float(t[-1]) if t.size else None})

    @app.get("/runs/{run_id}/live")
    async def live(request: Request, run_id: int, after: float = -np.inf) -> StreamingResponse:
        """Server-sent events: `points` ({x, y}) as stored, `state` when it changes, `end` when done. The
        store is polled once per period per run, whatever the number of viewers (`labctl.web.live`)."""
        await asyncio.to_thread(data.open_run, lab, run_id)
        hub = live_feeds(app, LIVE_PERIOD_S)

        async def stream() -> Any:
            feed = hub.join(run_id, after)
            try:
                last, state = after, None
                while not await request.is_disconnected():
                    await hub.poll(run_id, feed)
                    message, last = await hub.message(run_id, feed, last, LIVE_MAX_POINTS // 2)
                    if message:
                        yield message
                    if feed.state != state:
                        state = feed.state
                        yield f"event: state\ndata: {json.dumps(state)}\n\n"
                    if feed.done and last >= feed.last:
                        yield "event: end\ndata: {}\n\n"
                        return
                    yield ": keep-alive\n\n"
                    await asyncio.sleep(LIVE_PERIOD_S)
            finally:
                hub.leave(run_id)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/runs/{run_id}/io", response_class=HTMLResponse)
    def transcript(request: Request, run_id: int, instrument: str = "", page: int = 1,
                   q: str = "") -> Response:
        data.open_run(lab, run_id)
        return render(request, "_io.html", {"run_id": run_id,
                                             "io": data.transcript_page(lab, run_id, instrument, page, q)})

    @app.post("/runs/{run_id}/verify", response_class=HTMLResponse, dependencies=[Depends(require_csrf)])
    def verify(request: Request, run_id: int) -> Response:
        run = data.open_run(lab, run_id)
        result = run.verify()
        bad = None
        if result.first_bad_seq is not None:
            bad = next((e for e in lab.store.events(None) if e["seq"] == result.first_bad_seq), None)
        return render(request, "_verify.html", {"v": result, "bad": bad})

    @app.post("/runs/{run_id}/control/{command}", response_class=HTMLResponse,
              dependencies=[Depends(require_csrf)])
    def control(request: Request, run_id: int, command: str,
                user: Any = Depends(require_role("operator"))) -> Response:
        if command not in CONTROL_COMMANDS:
            raise HTTPException(404, f"no command {command!r} (one of {', '.join(CONTROL_COMMANDS)})")
        data.open_run(lab, run_id)
        try:
            cid = lab.store.post_control(run_id, command, actor=user.name)
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from exc
        return render(request, "_message.html", {
            "message": f"{command} sent to run {run_id} (command {cid}) as {user.name}; "
                       "the run acts on it at its next safe point"})

    @app.get("/runs/{run_id}/eis")
    def eis(run_id: int) -> JSONResponse:
        """The run's EIS sweeps for the Nyquist and Bode plots (frequency ascending; Hz and Ω)."""
        run = data.open_run(lab, run_id)
        return JSONResponse({"run": run_id, "units": {"freq": "Hz", "z_real": "ohm", "z_imag": "ohm"},
                             "sweeps": data.eis_sweeps(run)})

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse)
    def run_report(request: Request, run_id: int) -> Response:
        """The figures and metrics of `labctl runs report` (drawn once per finished run; the page loads
        this after itself, so a long run's figures do not hold the page up)."""
        run = data.open_run(lab, run_id)
        if not run.done:
            return render(request, "_report.html", {"run_id": run_id, "pending": True})
        rep = app.state.figures.get(f"run-{run_id}", "done", lambda out: figures.run_report(run, out))
        return render(request, "_report.html", {"run_id": run_id, "pending": False, "rep": rep})

    @app.get("/runs/{run_id}/figures/{name}")
    def run_figure(run_id: int, name: str) -> Response:
        path = app.state.figures.path(f"run-{run_id}", name)
        if path is None:
            raise HTTPException(404, f"run {run_id} has no report figure {name!r} (open the run page first)")
        return FileResponse(path, media_type="image/png")

    @app.get("/runs/{run_id}/export.{fmt}")
    def export_stream(run_id: int, fmt: str, stream: str = "cycling") -> Response:
        """One stream as a CSV or Parquet download (`labctl runs export`); Parquet carries the provenance and
        the steps' commanded and achieved values in its schema metadata."""
        from labctl.store import export

        if fmt not in export.FORMATS:
            raise HTTPException(404, f"no export format {fmt!r} (one of {', '.join(export.FORMATS)})")
        if fmt == "parquet" and not parquet_available():
            raise HTTPException(501, PARQUET_MISSING)
        run = data.open_run(lab, run_id)
        info = run.refresh()
        have = sorted(set(run.streams["stream"]))
        if stream not in have:
            raise HTTPException(404, f"run {run_id} has no stream {stream!r} "
                                     f"(it has: {', '.join(have) or 'none'})")
        tmp = Path(tempfile.mkdtemp(prefix="labctl-export-"))
        out = tmp / f"run{run_id}-{stream}.{fmt}"
        try:
            cols = export.export_columns(lab.store.measurements(run_id, stream), stream, info)
            meta = export.export_metadata(info, stream) if fmt == "parquet" else None
            export.write(cols, fmt, out, meta)
        except StoreError as exc:
            _remove(tmp)
            raise HTTPException(404, str(exc)) from exc
        media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        return FileResponse(out, media_type=media, filename=out.name, background=BackgroundTask(_remove, tmp))


PARQUET_MISSING = "Parquet export needs pyarrow: pip install 'labctl[parquet]'"


def parquet_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
