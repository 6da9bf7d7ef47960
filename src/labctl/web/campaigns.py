"""The campaign pages: the list, and one campaign with its design matrix (each point's factor values, plan
verdict, request, run, state and outcome, from `labctl.campaign.state` as `labctl campaign status` shows
them), the life statistics per condition (`lab.campaign(ID).lives()`), and every PNG figure
`labctl.campaign.report.write` returns (the Kaplan–Meier curves and whatever figures are added to it later,
without a change here). Operators may record the observations of cells whose runs ended (the same audited
`state.observe` the CLI's `campaign status` runs, as the web user) and cancel a running campaign
(`state.cancel`, as `labctl campaign cancel`). A planner campaign's pending
suggestions are shown with their values editable; operators approve (as suggested or edited) or reject them
through `labctl.campaign.suggestions`, as `campaign run --approve` does, recorded with the web user's name."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from labctl.store.errors import StoreError
from labctl.web import figures
from labctl.web.app import require_csrf, require_role
from labctl.web.pages import render


def _iso(t: float | None) -> str:
    return "" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def campaign_list(store: Any) -> list[dict[str, Any]]:
    """Every campaign, newest first, with its progress counts (`state.progress`)."""
    from sqlalchemy import select

    from labctl.campaign import state
    from labctl.store.db import reading
    from labctl.store.models import Campaign

    with reading(store.engine) as conn:
        rows = conn.execute(select(
            Campaign.id, Campaign.name, Campaign.design_kind, Campaign.seed, Campaign.simulate,
            Campaign.state, Campaign.created_by, Campaign.created_at, Campaign.ended_at,
        ).order_by(Campaign.id.desc())).all()
    return [{**dict(r._mapping), "created_at": _iso(r.created_at), "ended_at": _iso(r.ended_at),
             "progress": state.progress(store, r.id)} for r in rows]


def draw_report(camp: dict[str, Any], obs: Any, factors: list[str], folder: Path) -> dict[str, Any]:
    """`labctl.campaign.report.write` into `folder`; every PNG it returns is a figure to show."""
    from labctl.campaign import report

    paths = report.write(camp, obs, factors, folder)
    pngs = [p.name for p in paths.values() if Path(p).suffix.lower() == ".png" and Path(p).parent == folder]
    return {"figures": pngs}


def _open(lab: Any, campaign_id: int) -> Any:
    try:
        return lab.campaign(campaign_id)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from exc


def register(app: FastAPI) -> None:
    lab = app.state.lab

    @app.get("/campaigns", response_class=HTMLResponse)
    def campaigns(request: Request) -> Response:
        return render(request, "campaigns.html", {"rows": campaign_list(lab.store)})

    @app.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
    def campaign_page(request: Request, campaign_id: int) -> Response:
        from labctl.campaign import state

        handle = _open(lab, campaign_id)
        camp, factors = handle.info, handle.factors
        points = state.points(lab.store, campaign_id)
        obs = handle.observations()
        lives = handle.lives().to_dict("records")
        key = figures.fingerprint(camp["state"], obs.reset_index().to_dict("records"))
        rep = app.state.figures.get(f"campaign-{campaign_id}", key,
                                    lambda out: draw_report(camp, obs, factors, out))
        from labctl.campaign import suggestions

        waiting = suggestions.pending(lab.store, campaign_id) if suggestions.is_planned(camp) else []
        return render(request, "campaign.html", {
            "suggestions": waiting,
            "c": camp, "created_at": _iso(camp["created_at"]), "ended_at": _iso(camp["ended_at"]),
            "factors": factors, "points": points, "progress": state.progress(lab.store, campaign_id),
            "lives": lives, "rep": rep, "num": _num,
            "horizon_h": None if camp["horizon_s"] is None else camp["horizon_s"] / 3600.0,
        })

    @app.get("/campaigns/{campaign_id}/figures/{name}")
    def campaign_figure(campaign_id: int, name: str) -> Response:
        path = app.state.figures.path(f"campaign-{campaign_id}", name)
        if path is None:
            raise HTTPException(404, f"campaign {campaign_id} has no figure {name!r} (open its page first)")
        return FileResponse(path, media_type="image/png")

    @app.post("/campaigns/{campaign_id}/observe", response_class=HTMLResponse,
              dependencies=[Depends(require_csrf)])
    def observe(request: Request, campaign_id: int,
                user: Any = Depends(require_role("operator"))) -> Response:
        from labctl.campaign import state

        _open(lab, campaign_id)
        added = state.observe(lab.store, campaign_id, actor=user.name)
        finished = state.finish_if_done(lab.store, campaign_id, actor=user.name)
        return render(request, "_message.html", {
            "message": f"{added} cell(s) observed as {user.name}" + ("; the campaign is finished" if finished
                                                                      else "") + ". Reload to see them."})

    @app.post("/campaigns/{campaign_id}/cancel", response_class=HTMLResponse,
              dependencies=[Depends(require_csrf)])
    def cancel(request: Request, campaign_id: int, reason: str = Form(""),
               user: Any = Depends(require_role("operator"))) -> Response:
        from labctl.campaign import state

        _open(lab, campaign_id)
        try:
            out = state.cancel(lab.store, campaign_id, actor=user.name, reason=reason)
        except StoreError as exc:
            return _decided(request, str(exc), 400)
        running = out["running"]
        return _decided(request, f"cancelled by {user.name}: {len(out['cancelled'])} queued request(s) "
                        "cancelled" + (f"; run(s) {', '.join(map(str, running))} left running (abort each "
                                       "from its page)" if running else "") + ". Reload to see them.")

    def _decided(request: Request, message: str, status: int = 200) -> Response:
        return render(request, "_message.html", {"message": message}, status=status)

    @app.post("/campaigns/{campaign_id}/suggestions/{suggestion_id}/approve", response_class=HTMLResponse,
              dependencies=[Depends(require_csrf)])
    async def approve_suggestion(request: Request, campaign_id: int, suggestion_id: int,
                                 user: Any = Depends(require_role("operator"))) -> Response:
        from labctl.campaign import suggestions
        from labctl.errors import ConfigError

        _open(lab, campaign_id)
        form = await request.form()
        values = {k.removeprefix("value."): str(v) for k, v in form.items() if k.startswith("value.")}
        try:  # planning the point is blocking work: off the event loop that serves the live views
            rid = await run_in_threadpool(suggestions.approve, lab.store, campaign_id, suggestion_id,
                                          values=values or None, actor=user.name)
        except ConfigError as exc:
            return _decided(request, str(exc), 400)
        outcome = f"queued as request {rid}" if rid is not None else "refused by its plan, not queued"
        return _decided(request, f"suggestion {suggestion_id} approved by {user.name}: {outcome}")

    @app.post("/campaigns/{campaign_id}/suggestions/{suggestion_id}/reject", response_class=HTMLResponse,
              dependencies=[Depends(require_csrf)])
    def reject_suggestion(request: Request, campaign_id: int, suggestion_id: int, reason: str = Form(""),
                          user: Any = Depends(require_role("operator"))) -> Response:
        from labctl.campaign import suggestions
        from labctl.errors import ConfigError

        _open(lab, campaign_id)
        try:
            suggestions.reject(lab.store, campaign_id, suggestion_id, actor=user.name,
                               reason=reason.strip() or "rejected in the web app")
        except ConfigError as exc:
            return _decided(request, str(exc), 400)
        return _decided(request, f"suggestion {suggestion_id} rejected by {user.name}")
