"""Linked campaigns: each cell is a fabrication run, then a cell assembled from the sample it made, then a
test run on any free cycler channel. One `campaign_cells` row per cell keeps the lineage (sample ->
fabrication run -> cell -> test run) and its state; every change is an audited event in the same transaction
as the row.

- `submit_fabrications` queues a fabrication request per planned cell (sample id `campaign<ID>-cell<NNN>`);
- `advance` follows them: a completed fabrication records the sample (its `samples` row, with the overlayer
  the run reported) and only then submits the cell's test request (same sample id, so a dry run's test world
  starts from that sample, see `simulators.dryrun.DryRunBench.carry_sample`); a fabrication that failed, was
  cancelled or interrupted excludes the cell (an observation with the reason: never a short life, never a
  test), and so does a cancelled campaign for a cell fabricated but not yet tested (`not tested`). When the
  test request ends the row gets the test run, the channel and the assembly (the test
  protocol's operator step: who answered it, automatically in a dry run).

Everything is idempotent, so `labctl campaign resume` after the campaign process was killed redoes nothing:
a request a dead process committed but never linked is found by its sample id and its protocol's hash (the
two protocols' texts differ, the loader checks) and adopted; a row changes only from the state it was read in.
"""

from __future__ import annotations

import functools
import getpass
import time
from typing import Any

from sqlalchemy import insert, select, update

from labctl.store.models import REQUEST_ENDED, CampaignCell, CampaignObservation, CampaignPoint, RunRequest

ROLES = ("fabrication", "test")


def cell_id(sample_id: str) -> str:
    """The cell assembled from a sample: the sample's id with the cell's suffix (one cell per sample)."""
    return f"{sample_id}/cell"


def create_rows(conn: Any, campaign_id: int, points: list[tuple[int, str, bool]]) -> None:
    """One lineage row per planned cell (`points`: point row id, sample id, plan ok), in the campaign's
    creating transaction. Cells refused by their plan get none: they are never made."""
    now = time.time()
    for pid, sample, ok in points:
        if ok:
            conn.execute(insert(CampaignCell).values(
                campaign_id=campaign_id, point_id=pid, sample_id=sample, cell_id=cell_id(sample), cell={},
                state="planned", reason="", updated_at=now))


def _event(conn: Any, store: Any, kind: str, data: dict[str, Any], actor: str) -> None:
    from labctl.campaign.state import _event as event

    event(conn, store, kind, data, actor)


def _params(proto: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """The factor values this protocol has parameters for (a factor may belong to the other protocol)."""
    names = _parameter_names(proto["text"], proto["path"])
    return {k: str(v) for k, v in values.items() if k in names}


@functools.lru_cache(maxsize=16)
def _parameter_names(text: str, path: str) -> frozenset[str]:
    """A recorded protocol's parameter names (parsed once per text: a campaign submits many cells)."""
    from labctl.protocol.loader import parse_protocol

    return frozenset(parse_protocol(text, path).parameters)


def _find_request(store: Any, sample: str, sha256: str) -> int | None:
    with store.engine.connect() as conn:
        rid = conn.execute(select(RunRequest.id).where(RunRequest.sample_id == sample,
                                                       RunRequest.protocol_sha256 == sha256)
                           .order_by(RunRequest.id).limit(1)).scalar()
        conn.rollback()
    return None if rid is None else int(rid)


def _submit(store: Any, camp: dict[str, Any], role: str, sample: str, values: dict[str, Any],
            who: str) -> tuple[int, bool]:
    """(request id, adopted): the request of this sample and role a dead process already committed, else a
    new one."""
    from labctl.queue import submit

    proto = camp["protocols"][role]
    rid = _find_request(store, sample, proto["sha256"])
    if rid is not None:
        return rid, True
    return submit(proto["path"], text=proto["text"], parameters=_params(proto, values), sample=sample,
                  simulate=bool(camp["simulate"]), requested_by=who, store=store), False


def cells(store: Any, campaign_id: int) -> list[dict[str, Any]]:
    """Each cell's lineage row with its point's values and both requests' states, in run order."""
    from sqlalchemy.orm import aliased

    fab, test = aliased(RunRequest), aliased(RunRequest)
    q = (select(*CampaignCell.__table__.c, CampaignPoint.seq, CampaignPoint.factor_values,
                fab.state.label("fab_state"), fab.run_id.label("fab_req_run"), fab.reason.label("fab_reason"),
                test.state.label("test_state"), test.run_id.label("test_req_run"),
                test.worker.label("test_worker"), CampaignObservation.status.label("obs_status"))
         .join(CampaignPoint, CampaignPoint.id == CampaignCell.point_id)
         .outerjoin(fab, fab.id == CampaignCell.fab_request_id)
         .outerjoin(test, test.id == CampaignCell.test_request_id)
         .outerjoin(CampaignObservation, CampaignObservation.point_id == CampaignCell.point_id)
         .where(CampaignCell.campaign_id == campaign_id).order_by(CampaignPoint.seq))
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q).all()]
        conn.rollback()
    return rows


def lineage(store: Any, campaign_id: int) -> list[dict[str, Any]]:
    """The lineage as callers show it: sample -> fabrication run -> cell -> test run, state and reason."""
    return [{"seq": r["seq"], "sample_id": r["sample_id"], "fabrication_request": r["fab_request_id"],
             "fabrication_run": r["fab_run_id"] or r["fab_req_run"], "cell_id": r["cell_id"],
             "assembly": dict(r["cell"] or {}), "test_request": r["test_request_id"],
             "test_run": r["test_run_id"] or r["test_req_run"], "channel": r["channel"] or r["test_worker"],
             "state": r["state"], "reason": r["reason"]} for r in cells(store, campaign_id)]


def _move(store: Any, row: dict[str, Any], kind: str, event: dict[str, Any], who: str, **values: Any) -> bool:
    """Change the row from the state it was read in (another process that got there first wins) and audit it
    in the same transaction; False if the row had moved on."""
    with store.engine.begin() as conn:
        changed = conn.execute(update(CampaignCell).where(
            CampaignCell.id == row["id"], CampaignCell.state == row["state"]).values(
                **values, updated_at=time.time())).rowcount
        if changed != 1:
            return False
        _event(conn, store, kind, {"campaign_id": row["campaign_id"], "seq": row["seq"],
                                   "sample_id": row["sample_id"], **event}, who)
    return True


def submit_fabrications(store: Any, campaign_id: int, *, actor: str | None = None) -> list[int]:
    """Queue the fabrication of every planned cell not yet queued, in run order; returns the request ids
    newly linked (adopted ones included)."""
    from labctl.campaign.state import get

    who = actor or getpass.getuser()
    camp = get(store, campaign_id)
    linked = []
    for row in cells(store, campaign_id):
        if row["state"] != "planned" or row["fab_request_id"] is not None:
            continue
        rid, adopted = _submit(store, camp, "fabrication", row["sample_id"], row["factor_values"], who)
        if _move(store, row, "campaign.fabrication.submitted", {"request_id": rid, "adopted": adopted}, who,
                 fab_request_id=rid, state="fabricating"):
            linked.append(rid)
    return linked


def _overlayer(store: Any, run_id: int) -> dict[str, Any]:
    """What the fabrication run recorded about the sample it made (the last step that reported one)."""
    run = store.run(run_id)
    found: dict[str, Any] = {}
    for s in run.get("steps") or []:
        achieved = s.get("achieved") or {}
        if isinstance(achieved, dict) and isinstance(achieved.get("overlayer"), dict):
            found = achieved["overlayer"]
    return found


def _why_excluded(store: Any, run_id: int | None, state: str, reason: str) -> tuple[str, str]:
    """(lineage state, reason) of a fabrication that did not complete."""
    run_state = store.run(run_id)["state"] if run_id is not None else None
    interrupted = run_state == "interrupted" or "interrupted" in reason
    what = f"fabrication {'interrupted' if interrupted else state}" + (f" (run {run_id})" if run_id else "")
    return ("interrupted" if interrupted else "fabrication failed"), f"{what}: {reason}".rstrip(": ")


def _assembly(store: Any, run_id: int) -> dict[str, Any]:
    """The test run's assembly step: the cell built, who answered, whether automatically (a dry run)."""
    run = store.run(run_id)
    for s in run.get("steps") or []:
        a = s.get("achieved") or {}
        if s.get("kind") == "operator" and isinstance(a, dict) and "cell" in a:
            return {"run_id": run_id, "step": s.get("index"), "build": a["cell"],
                    "acknowledged_by": a.get("acknowledged_by"), "auto": a.get("auto"),
                    "status": s.get("status")}
    return {"run_id": run_id, "step": None, "why": "the test run ended before its assembly step"}


def advance(store: Any, campaign_id: int, *, actor: str | None = None,
            rows: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Move every cell on from what its requests say now (see the module; `rows`: `cells()` just read);
    returns counts of what changed: fabricated, excluded, tests submitted, tests ended."""
    from labctl.campaign.state import get

    who = actor or getpass.getuser()
    camp = None
    out = {"fabricated": 0, "excluded": 0, "tests": 0, "tested": 0}
    for row in cells(store, campaign_id) if rows is None else rows:
        if row["state"] == "fabricating" and row["fab_state"] in REQUEST_ENDED:
            run_id = row["fab_req_run"]
            ok = row["fab_state"] == "finished" and run_id is not None \
                and store.run(run_id)["state"] == "completed"
            if ok:
                layer = _overlayer(store, run_id)
                store.record_sample(row["sample_id"], run_id=run_id, overlayer=layer)
                summary = {k: layer.get(k) for k in ("source", "layer", "thickness_m") if k in layer}
                if _move(store, row, "campaign.fabricated", {"run_id": run_id, "overlayer": summary}, who,
                         fab_run_id=run_id, state="fabricated"):
                    out["fabricated"] += 1
                    row = {**row, "state": "fabricated", "fab_run_id": run_id}
            else:
                state, reason = _why_excluded(store, run_id, row["fab_state"], row["fab_reason"] or "")
                if _exclude(store, row, run_id, state, reason, who):
                    out["excluded"] += 1
                continue
        if row["state"] == "fabricated":
            camp = camp or get(store, campaign_id)
            if camp["state"] != "running":  # cancelled: the sample is made (recorded), its test never queued
                reason = f"campaign {campaign_id} {camp['state']} before the cell's test was queued"
                if _exclude(store, row, row["fab_run_id"], "not tested", reason, who, was="fabricated"):
                    out["excluded"] += 1
                continue
            rid, adopted = _submit(store, camp, "test", row["sample_id"], row["factor_values"], who)
            if _link_test(store, row, rid, adopted, who):
                out["tests"] += 1
            continue
        if row["state"] == "testing" and row["test_state"] in REQUEST_ENDED:
            run_id = row["test_req_run"]
            run_state = store.run(run_id)["state"] if run_id is not None else None
            state = "interrupted" if run_state == "interrupted" else "tested"
            assembly = _assembly(store, run_id) if run_id is not None else {"why": "the test never ran"}
            reason = "" if state == "tested" else f"test run {run_id} interrupted"
            if _move(store, row, "campaign.cell.tested", {"run_id": run_id, "state": state,
                                                         "channel": row["test_worker"], "assembly": assembly},
                     who, test_run_id=run_id, channel=row["test_worker"], cell=assembly, state=state,
                     reason=reason):
                out["tested"] += 1
    return out


def _link_test(store: Any, row: dict[str, Any], rid: int, adopted: bool, who: str) -> bool:
    """The test request becomes the cell's request (`campaign_points.request_id`, which observations follow)
    and the lineage's, in one transaction."""
    with store.engine.begin() as conn:
        changed = conn.execute(update(CampaignCell).where(
            CampaignCell.id == row["id"], CampaignCell.state == "fabricated").values(
                test_request_id=rid, state="testing", updated_at=time.time())).rowcount
        if changed != 1:
            return False
        conn.execute(update(CampaignPoint).where(CampaignPoint.id == row["point_id"],
                                                 CampaignPoint.request_id.is_(None)).values(request_id=rid))
        _event(conn, store, "campaign.point.submitted", {
            "campaign_id": row["campaign_id"], "seq": row["seq"], "request_id": rid, "role": "test",
            "sample_id": row["sample_id"], "fabrication_run": row["fab_run_id"], "adopted": adopted}, who)
    return True


def _exclude(store: Any, row: dict[str, Any], run_id: int | None, state: str, reason: str, who: str,
             was: str = "fabricating") -> bool:
    """A cell whose fabrication did not complete (or, `was` fabricated, whose campaign was cancelled before
    its test): its lineage state and an `excluded` observation, in one transaction."""
    with store.engine.begin() as conn:
        changed = conn.execute(update(CampaignCell).where(
            CampaignCell.id == row["id"], CampaignCell.state == was).values(
                fab_run_id=run_id, state=state, reason=reason, updated_at=time.time())).rowcount
        if changed != 1:
            return False
        conn.execute(insert(CampaignObservation).values(
            campaign_id=row["campaign_id"], point_id=row["point_id"], run_id=run_id, status="excluded",
            hours=None, reason=reason, metrics={}, created_at=time.time()))
        _event(conn, store, "campaign.observed", {"campaign_id": row["campaign_id"], "seq": row["seq"],
                                                  "run_id": run_id, "status": "excluded", "hours": None,
                                                  "reason": reason, "sample_id": row["sample_id"]}, who)
    return True
