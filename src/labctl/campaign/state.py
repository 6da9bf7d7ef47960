"""A campaign's state as rows: the campaign, its points in run order, the run request each became and one
observation per finished cell. Every change that matters is an audited event in the same transaction as its
row (`campaign.created`, `campaign.point.submitted`, `campaign.observed`, `campaign.finished`,
`campaign.cancelled`).

Submitting is idempotent, so `labctl campaign resume` after the campaign process died never submits a cell
twice: each cell has its own sample id (`campaign<ID>-cell<NNN>`) that its request carries, and a point whose
request was committed but not yet linked (the process died between the two) is linked to that request, not
submitted again. Requests start at most once (`labctl.store.requests`), so no run starts twice either.
A linked campaign (fabrication + test protocols) keeps each cell's lineage in `labctl.campaign.lineage`; its
point's request is the cell's test request, submitted once its fabrication completed.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from sqlalchemy import insert, select, update

from labctl.campaign.design import Design
from labctl.campaign.loader import LoadedCampaign, horizon_seconds
from labctl.store import audit
from labctl.store.errors import StoreError
from labctl.store.models import (
    REQUEST_ENDED,
    Campaign,
    CampaignCell,
    CampaignObservation,
    CampaignPoint,
    RunRequest,
)


def _event(conn: Any, store: Any, kind: str, data: dict[str, Any], actor: str) -> None:
    # the store's checked audit key, as labctl.store.requests uses it: the row and its event commit together
    audit.append(conn, store._audit_key(), None, kind, {**data, "at": time.time()}, actor)


def sample_id(campaign_id: int, seq: int) -> str:
    return f"campaign{campaign_id}-cell{seq + 1:03d}"


def create(store: Any, c: LoadedCampaign, design: Design, *, simulate: bool, actor: str | None = None) -> int:
    """Record the campaign, its design (seed included) and every point with its plan's verdict."""
    from labctl.campaign import lineage

    who = actor or getpass.getuser()
    store.check_audit_key()
    with store.engine.begin() as conn:
        cid = int(conn.execute(insert(Campaign).values(
            name=c.model.name, path=c.path, text=c.text, sha256=c.sha256,
            protocols={r: {"path": p.path, "sha256": p.sha256, "text": p.text}
                       for r, p in c.protocols.items()},
            station_path=str(c.station_path) if c.station_path else None,
            cycler_path=str(c.cycler_path) if c.cycler_path else None, design_kind=design.kind,
            seed=design.seed, simulate=simulate, horizon_s=horizon_seconds(c.model), state="running",
            created_by=who, created_at=time.time(),
        )).inserted_primary_key[0])
        made = []
        for p in design.points:
            pid = conn.execute(insert(CampaignPoint).values(
                campaign_id=cid, seq=p.seq, point=p.point, replicate=p.replicate, block=p.block,
                factor_values=p.values, plan_ok=p.ok, plan_errors=p.errors, duration_s=p.duration_s,
                sample_id=sample_id(cid, p.seq), request_id=None,
            )).inserted_primary_key[0]
            made.append((int(pid), sample_id(cid, p.seq), p.ok))
        if c.linked:
            lineage.create_rows(conn, cid, made)
        _event(conn, store, "campaign.created", {
            "campaign_id": cid, "name": c.model.name, "sha256": c.sha256, "design": design.kind,
            "seed": design.seed, "points": len(design.points), "refused_by_plan": len(design.failed),
            "simulate": simulate, "linked": c.linked,
            "cycler": str(c.cycler_path) if c.cycler_path else None}, who)
    return cid


def get(store: Any, campaign_id: int) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(*Campaign.__table__.c).where(Campaign.id == campaign_id)).first()
        conn.rollback()
    if row is None:
        raise StoreError(f"no campaign {campaign_id}")
    return dict(row._mapping)


def is_linked(camp: dict[str, Any]) -> bool:
    """A campaign whose cells are a fabrication run and a test run (its recorded protocols)."""
    return "fabrication" in camp["protocols"] and "test" in camp["protocols"]


def submit_pending(store: Any, campaign_id: int, *, actor: str | None = None) -> list[int]:
    """Submit every planned point that has no request yet, in run order (runners take equal priorities oldest
    first, so the ids keep the design's order without outranking anyone else's requests), linking a request a
    dead process had already committed; returns the request ids newly linked."""
    from labctl.queue import submit

    who = actor or getpass.getuser()
    camp = get(store, campaign_id)
    if camp["state"] != "running":  # a cancelled (or finished) campaign queues nothing more
        return []
    if is_linked(camp):  # fabrications first; each test request follows its completed fabrication
        from labctl.campaign.lineage import submit_fabrications

        return submit_fabrications(store, campaign_id, actor=who)
    proto = camp["protocols"]["test"]
    with store.engine.connect() as conn:
        points = conn.execute(select(*CampaignPoint.__table__.c).where(
            CampaignPoint.campaign_id == campaign_id, CampaignPoint.plan_ok.is_(True),
            CampaignPoint.request_id.is_(None)).order_by(CampaignPoint.seq)).all()
        conn.rollback()
    linked = []
    for p in points:
        with store.engine.connect() as conn:
            rid = conn.execute(select(RunRequest.id).where(RunRequest.sample_id == p.sample_id)
                               .order_by(RunRequest.id).limit(1)).scalar()
            conn.rollback()
        adopted = rid is not None
        if rid is None:
            rid = submit(proto["path"], text=proto["text"], parameters=dict(p.factor_values),
                         sample=p.sample_id, simulate=bool(camp["simulate"]), requested_by=who, store=store)
        with store.engine.begin() as conn:
            changed = conn.execute(update(CampaignPoint).where(
                CampaignPoint.id == p.id, CampaignPoint.request_id.is_(None)).values(request_id=rid)).rowcount
            if changed == 1:
                _event(conn, store, "campaign.point.submitted", {
                    "campaign_id": campaign_id, "seq": p.seq, "request_id": int(rid),
                    "sample_id": p.sample_id, "adopted": adopted}, who)
                linked.append(int(rid))
    return linked


def points(store: Any, campaign_id: int) -> list[dict[str, Any]]:
    """Each point with its request's state, its run and its observation (None until observed)."""
    obs_cols = [c.label(f"obs_{c.name}") for c in CampaignObservation.__table__.c]
    q = (select(*CampaignPoint.__table__.c, RunRequest.state.label("request_state"), RunRequest.run_id,
                RunRequest.reason.label("request_reason"), *obs_cols,
                CampaignCell.state.label("cell_state"), CampaignCell.fab_request_id, CampaignCell.fab_run_id,
                CampaignCell.cell_id, CampaignCell.channel)
         .outerjoin(RunRequest, RunRequest.id == CampaignPoint.request_id)
         .outerjoin(CampaignObservation, CampaignObservation.point_id == CampaignPoint.id)
         .outerjoin(CampaignCell, CampaignCell.point_id == CampaignPoint.id)
         .where(CampaignPoint.campaign_id == campaign_id).order_by(CampaignPoint.seq))
    out = []
    with store.engine.connect() as conn:
        for p in conn.execute(q).all():
            seen = p.obs_id is not None
            out.append({
                "id": p.id, "seq": p.seq, "point": p.point, "replicate": p.replicate, "block": p.block,
                "values": dict(p.factor_values), "plan_ok": p.plan_ok, "plan_errors": list(p.plan_errors),
                "sample_id": p.sample_id, "request_id": p.request_id,
                "request_state": p.request_state if p.plan_ok else "refused by plan", "run_id": p.run_id,
                "request_reason": p.request_reason or "",
                "status": p.obs_status if seen else None, "hours": p.obs_hours if seen else None,
                "reason": p.obs_reason if seen else "", "metrics": dict(p.obs_metrics) if seen else {},
                # linked campaigns (else None): where the cell is in sample -> fabrication -> cell -> test
                "cell_state": p.cell_state, "fab_request_id": p.fab_request_id, "fab_run_id": p.fab_run_id,
                "cell_id": p.cell_id, "channel": p.channel,
            })
        conn.rollback()
    return out


def observe(store: Any, campaign_id: int, *, actor: str | None = None) -> int:
    """An observation for each cell whose request ended and has none yet (see `observations.classify`);
    returns how many were added."""
    from labctl.campaign.observations import classify

    who = actor or getpass.getuser()
    horizon = get(store, campaign_id)["horizon_s"]
    added = 0
    for p in points(store, campaign_id):
        if p["status"] is not None or p["request_id"] is None or p["request_state"] not in REQUEST_ENDED:
            continue
        status, hours, reason, metrics = classify(store, p["request_state"], p["run_id"], p["request_reason"],
                                                  horizon)
        with store.engine.begin() as conn:
            conn.execute(insert(CampaignObservation).values(
                campaign_id=campaign_id, point_id=p["id"], run_id=p["run_id"], status=status, hours=hours,
                reason=reason, metrics=metrics, created_at=time.time()))
            _event(conn, store, "campaign.observed", {"campaign_id": campaign_id, "seq": p["seq"],
                                                      "run_id": p["run_id"], "status": status, "hours": hours,
                                                      "reason": reason}, who)
        added += 1
    return added


def progress(store: Any, campaign_id: int) -> dict[str, int]:
    """Counts: points, refused by plan, queued/running (not ended), observed by status."""
    rows = points(store, campaign_id)
    out = {"points": len(rows), "refused": sum(not r["plan_ok"] for r in rows),
           "unsubmitted": sum(r["plan_ok"] and r["request_id"] is None and r["fab_request_id"] is None
                              and r["status"] is None for r in rows),
           # a run queued or running: the cell's (test) run, or a linked cell's fabrication before its test
           "pending": sum((r["request_id"] is not None and r["request_state"] not in REQUEST_ENDED)
                          or (r["request_id"] is None and r["fab_request_id"] is not None
                              and r["status"] is None) for r in rows)}
    for status in ("failed", "censored", "excluded"):
        out[status] = sum(r["status"] == status for r in rows)
    return out


def finish_if_done(store: Any, campaign_id: int, *, actor: str | None = None) -> bool:
    """Mark the campaign finished once every planned cell is observed (audited once)."""
    prog = progress(store, campaign_id)
    if prog["unsubmitted"] or prog["pending"] or prog["failed"] + prog["censored"] + prog["excluded"] < \
            prog["points"] - prog["refused"]:
        return False
    with store.engine.begin() as conn:
        changed = conn.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "running")
                               .values(state="finished", ended_at=time.time())).rowcount
        if changed == 1:
            _event(conn, store, "campaign.finished", {"campaign_id": campaign_id, **prog},
                   actor or getpass.getuser())
    return True


def cancel(store: Any, campaign_id: int, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
    """Stop a running campaign: `running -> cancelled` (audited, with `reason`), then every request of its
    cells still queued is cancelled (fabrications and tests; their cells are excluded when observed) and
    nothing more is submitted or approved. Runs already started go on, and are observed when they end: a
    1000 h test half done is data, so aborting one is a separate, explicit act (`labctl abort RUN`).
    Returns {"cancelled": request ids, "running": run ids left running}; `StoreError` if not running."""
    from labctl.store import requests

    who = actor or getpass.getuser()
    why = reason or f"campaign {campaign_id} cancelled by {who}"
    with store.engine.begin() as conn:
        changed = conn.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.state == "running")
                               .values(state="cancelled", ended_at=time.time())).rowcount
        if changed == 1:
            _event(conn, store, "campaign.cancelled", {"campaign_id": campaign_id, "reason": why}, who)
    if changed != 1:
        raise StoreError(f"campaign {campaign_id} is {get(store, campaign_id)['state']}: only a running "
                         "campaign can be cancelled")
    ids = _request_ids(store, campaign_id)
    cancelled = []
    for rid in ids:
        try:
            requests.cancel(store, rid, actor=who, reason=why)
            cancelled.append(rid)
        except StoreError:  # taken or started (or ended) meanwhile: its run is followed like any other
            pass
    with store.engine.connect() as conn:
        running = [int(r) for r in conn.execute(select(RunRequest.run_id).where(
            RunRequest.id.in_(ids), RunRequest.run_id.is_not(None),
            RunRequest.state.not_in(REQUEST_ENDED))).scalars()]
        conn.rollback()
    return {"cancelled": cancelled, "running": running}


def _request_ids(store: Any, campaign_id: int) -> list[int]:
    """Every run request of the campaign's cells: each point's, and a linked cell's fabrication and test."""
    with store.engine.connect() as conn:
        ids = set(conn.execute(select(CampaignPoint.request_id).where(
            CampaignPoint.campaign_id == campaign_id, CampaignPoint.request_id.is_not(None))).scalars())
        for fab, test in conn.execute(select(CampaignCell.fab_request_id, CampaignCell.test_request_id)
                                      .where(CampaignCell.campaign_id == campaign_id)):
            ids.update(r for r in (fab, test) if r is not None)
        conn.rollback()
    return sorted(int(i) for i in ids)
