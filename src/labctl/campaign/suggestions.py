"""A planner campaign's suggestions as rows (migration 0009): proposed by the planner, then queued (as a
campaign point and its run request), edited then queued, refused by the point's plan, or rejected by a person.

The planner is rebuilt from the rows at every proposal (`planners.make_for`, stateless), and each proposal is
audited (`campaign.suggested`) with the sha256 of exactly the observations and pending points it was given,
so anyone can check what a suggestion was based on. `labctl campaign run/resume --approve` and the web app
decide proposals with `pending`, `approve` and `reject`; without `--approve` each proposal is approved as
suggested. Edited values are checked by the campaign's factor rules (in range, one of the levels) and the
point is planned like any design point before anything is queued.

A campaign with a fabrication and a test protocol (linked runs) turns each approved suggestion into a cell
with its lineage row (`labctl.campaign.lineage`): the fabrication request is queued at approval, the test
request only once that fabrication completed, and the planner sees the cell when its test run has ended and
been observed (a failed fabrication or an interrupted test excludes it, as in a fixed design). Only a running
campaign takes approvals: a finished or cancelled one refuses them (`SuggestionError`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from labctl.campaign import state
from labctl.campaign.models import Campaign as CampaignModel
from labctl.campaign.planners import Observation, Planner, make_for
from labctl.campaign.planners import suggest as ask
from labctl.errors import ConfigError
from labctl.store.models import CampaignPoint, CampaignSuggestion

#: the planner's seed is recorded as the campaign's seed (`campaigns.seed`); `design_kind` is this + name
KIND_PREFIX = "planner:"


class SuggestionError(ConfigError):
    """A suggestion that cannot be decided: unknown, already decided, or edited values outside the factors."""


def is_planned(camp: dict[str, Any]) -> bool:
    return str(camp["design_kind"]).startswith(KIND_PREFIX)


def model_of(camp: dict[str, Any]) -> CampaignModel:
    """The recorded campaign file's model (the text it was started with, not the file on disk now)."""
    from labctl.protocol.safeyaml import load
    from labctl.protocol.validation import validate

    doc = load(camp["text"], camp["path"])
    model, problems = validate(CampaignModel, doc.data, doc)
    if model is None:
        raise ConfigError(f"campaign {camp['id']}: its recorded file no longer validates: {problems[0]}")
    return model


def _protocols(camp: dict[str, Any], values: dict[str, str] | None = None) -> dict[str, Any]:
    from labctl.protocol.loader import parse_protocol

    out = {}
    for role, p in camp["protocols"].items():
        params = {k: v for k, v in (values or {}).items() if k in _defaults_of(p)}
        out[role] = parse_protocol(p["text"], p["path"], params)
    return out


def _defaults_of(proto: dict[str, Any]) -> dict[str, Any]:
    from labctl.protocol.loader import parse_protocol

    return dict(parse_protocol(proto["text"], proto["path"]).parameters)


def planner_of(camp: dict[str, Any]) -> Planner:
    """The campaign's planner, built afresh from the recorded file and seed."""
    model = model_of(camp)
    if model.planner is None:
        raise ConfigError(f"campaign {camp['id']} has a fixed design, no planner")
    defaults = {k: v for p in camp["protocols"].values() for k, v in _defaults_of(p).items()}
    return make_for(model, defaults, seed=int(camp["seed"]))


def inputs(store: Any, campaign_id: int) -> tuple[list[Observation], list[dict[str, str]]]:
    """What the planner is given: each observed life (failed or censored; excluded cells tell nothing about
    life), and the points still in flight (queued, running, or proposed and not yet decided)."""
    obs, pend = [], []
    for r in state.points(store, campaign_id):
        if r["status"] in ("failed", "censored"):
            obs.append(Observation(dict(r["values"]), r["status"], r["hours"], dict(r["metrics"])))
        elif r["status"] is None and r["plan_ok"]:
            pend.append(dict(r["values"]))
    pend += [dict(s["values"]) for s in pending(store, campaign_id)]
    return obs, pend


def digest(observations: list[Observation], pend: list[dict[str, str]]) -> str:
    """sha256 of the planner's input, canonical JSON (sorted keys, in row order)."""
    doc = {"observations": [{"values": o.values, "status": o.status, "hours": o.hours, "metrics": o.metrics}
                            for o in observations], "pending": pend}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _row(s: Any) -> dict[str, Any]:
    return {"id": s.id, "campaign_id": s.campaign_id, "batch": s.batch, "planner": dict(s.planner),
            "values": dict(s.suggested_values), "final_values": s.final_values, "state": s.state,
            "observations_sha256": s.observations_sha256, "observations": s.observations,
            "pending": s.pending, "point_id": s.point_id, "reason": s.reason, "created_by": s.created_by,
            "created_at": s.created_at, "decided_by": s.decided_by, "decided_at": s.decided_at}


def all_suggestions(store: Any, campaign_id: int) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(*CampaignSuggestion.__table__.c).where(
            CampaignSuggestion.campaign_id == campaign_id).order_by(CampaignSuggestion.id)).all()
        conn.rollback()
    return [_row(s) for s in rows]


def pending(store: Any, campaign_id: int) -> list[dict[str, Any]]:
    """The proposals awaiting a decision, oldest first: id, values, the planner, the observations' hash."""
    return [s for s in all_suggestions(store, campaign_id) if s["state"] == "proposed"]


def propose(store: Any, campaign_id: int, n: int, *, actor: str | None = None) -> list[int]:
    """Ask the planner for `n` points and record them as proposals (one audited event with the hash of the
    planner's input). A planner that fails raises `PlannerError` and nothing is recorded."""
    who = actor or getpass.getuser()
    camp = state.get(store, campaign_id)
    planner = planner_of(camp)
    obs, pend = inputs(store, campaign_id)
    points = ask(planner, n, obs, pend)
    sha = digest(obs, pend)
    info = planner.describe()
    ids = []
    store.check_audit_key()
    with store.engine.begin() as conn:
        batch = int(conn.execute(select(func.coalesce(func.max(CampaignSuggestion.batch), 0)).where(
            CampaignSuggestion.campaign_id == campaign_id)).scalar() or 0) + 1
        for p in points:
            ids.append(int(conn.execute(insert(CampaignSuggestion).values(
                campaign_id=campaign_id, batch=batch, planner=info, suggested_values=p, final_values=None,
                observations_sha256=sha, observations=len(obs), pending=len(pend), state="proposed",
                point_id=None, reason="", created_by=who, created_at=time.time())).inserted_primary_key[0]))
        state._event(conn, store, "campaign.suggested", {
            "campaign_id": campaign_id, "batch": batch, "suggestions": ids, "values": points,
            "planner": info, "observations_sha256": sha, "observations": len(obs), "pending": len(pend)}, who)
    return ids


def _stations(camp: dict[str, Any]) -> dict[str, Path | None]:
    """The station each protocol is planned against, as `design.plan_design` does: the fabrication on the
    campaign's station, a linked campaign's test on its cycler's first channel (else the station)."""
    station = Path(camp["station_path"]) if camp["station_path"] else None
    test = station
    if state.is_linked(camp) and camp.get("cycler_path"):
        from labctl.campaign.channels import load_rack

        test = load_rack(camp["cycler_path"]).first
    return {"fabrication": station, "test": test}


def _plan(camp: dict[str, Any], values: dict[str, str]) -> tuple[list[str], list[str], float]:
    from labctl.protocol.plan import make_plan
    from labctl.protocol.problems import FileProblemsError
    from labctl.station import load_station

    stations = {role: load_station(p) if p else None for role, p in _stations(camp).items()}
    errors: list[str] = []
    warns: list[str] = []
    duration = 0.0
    for role, p in camp["protocols"].items():
        try:
            loaded = _protocols({"protocols": {role: p}}, values)[role]
        except FileProblemsError as exc:
            errors += [f"{role}: {prob}" for prob in exc.problems]
            continue
        plan = make_plan(loaded, stations[role])
        errors += [f"{role}: {e}" for e in plan.errors]
        warns += [f"{role}: {w}" for w in plan.warnings]
        duration += plan.duration
    return errors, warns, duration


def _get(store: Any, campaign_id: int, suggestion_id: int) -> dict[str, Any]:
    found = [s for s in all_suggestions(store, campaign_id) if s["id"] == suggestion_id]
    if not found:
        raise SuggestionError(f"campaign {campaign_id} has no suggestion {suggestion_id}")
    if found[0]["state"] != "proposed":
        raise SuggestionError(f"suggestion {suggestion_id} was already decided ({found[0]['state']})")
    return found[0]


def check_open(camp: dict[str, Any]) -> None:
    """`SuggestionError` unless the campaign is still running: a finished or cancelled campaign's budget is
    closed, and a cell approved into it would be queued and run but never observed or reported."""
    if camp["state"] != "running":
        raise SuggestionError(f"campaign {camp['id']} is {camp['state']}: its suggestions can no longer be "
                              "approved (start a new campaign to run more cells)")


def approve(store: Any, campaign_id: int, suggestion_id: int, *, values: dict[str, str] | None = None,
            actor: str) -> int | None:
    """Accept a proposal (as suggested, or with edited `values`): the values are checked by the factor rules
    (`SuggestionError` naming each problem), the point is planned and recorded as the campaign's next cell
    and, when its plan passes, submitted (a linked campaign: the cell's fabrication). Returns that run request
    id, None if its plan refused it. A campaign that is no longer running refuses (`check_open`)."""
    camp = state.get(store, campaign_id)
    check_open(camp)
    s = _get(store, campaign_id, suggestion_id)
    planner = planner_of(camp)
    final = {str(k): str(v) for k, v in (values if values is not None else s["values"]).items()}
    errors = planner.space.check(final)
    if errors:
        raise SuggestionError(f"suggestion {suggestion_id}: " + "; ".join(errors))
    edited = final != s["values"]
    plan_errors, _warns, duration = _plan(camp, final)
    try:
        pid = _record(store, camp, suggestion_id, s, final, plan_errors, duration, edited, actor)
    except IntegrityError as exc:  # another approval took the same place in the run order at the same time
        raise SuggestionError(f"suggestion {suggestion_id}: another approval was recorded at the same "
                              "moment; try again") from exc
    if plan_errors:
        return None
    state.submit_pending(store, campaign_id, actor=actor)
    row = next(r for r in state.points(store, campaign_id) if r["id"] == pid)
    return row["fab_request_id"] if state.is_linked(camp) else row["request_id"]


def _record(store: Any, camp: dict[str, Any], suggestion_id: int, s: dict[str, Any], final: dict[str, str],
            plan_errors: list[str], duration: float, edited: bool, actor: str) -> int:
    """The approved point as the campaign's next cell (a linked campaign: with its lineage row) and the
    suggestion's decision, in one transaction; refused if the campaign stopped running meanwhile."""
    from labctl.campaign import lineage
    from labctl.store.models import Campaign

    campaign_id = int(camp["id"])
    with store.engine.begin() as conn:
        if conn.execute(select(Campaign.state).where(Campaign.id == campaign_id)).scalar() != "running":
            raise SuggestionError(f"campaign {campaign_id} stopped running meanwhile: suggestion "
                                  f"{suggestion_id} can no longer be approved")
        seq = int(conn.execute(select(func.coalesce(func.max(CampaignPoint.seq), -1)).where(
            CampaignPoint.campaign_id == campaign_id)).scalar())  # type: ignore[arg-type]
        seq += 1
        pid = int(conn.execute(insert(CampaignPoint).values(
            campaign_id=campaign_id, seq=seq, point=seq, replicate=0, block=None, factor_values=final,
            plan_ok=not plan_errors, plan_errors=plan_errors, duration_s=duration,
            sample_id=state.sample_id(campaign_id, seq), request_id=None)).inserted_primary_key[0])
        if state.is_linked(camp):  # the cell's lineage row (none when its plan refused it: never made)
            lineage.create_rows(conn, campaign_id, [(pid, state.sample_id(campaign_id, seq),
                                                     not plan_errors)])
        changed = conn.execute(update(CampaignSuggestion).where(
            CampaignSuggestion.id == suggestion_id, CampaignSuggestion.state == "proposed").values(
            state="refused" if plan_errors else "queued", final_values=final, point_id=pid,
            reason="; ".join(plan_errors) or ("edited" if edited else ""), decided_by=actor,
            decided_at=time.time())).rowcount
        if changed != 1:  # decided by someone else meanwhile: this transaction (and its point) rolls back
            raise SuggestionError(f"suggestion {suggestion_id} was decided meanwhile")
        state._event(conn, store, "campaign.suggestion.approved", {
            "campaign_id": campaign_id, "suggestion_id": suggestion_id, "seq": seq, "values": final,
            "edited": edited, "suggested": s["values"], "refused_by_plan": plan_errors}, actor)
    return pid


def reject(store: Any, campaign_id: int, suggestion_id: int, *, actor: str, reason: str) -> None:
    """Turn a proposal down (audited with the reason); it is never queued and does not count to the budget."""
    _get(store, campaign_id, suggestion_id)
    with store.engine.begin() as conn:
        changed = conn.execute(update(CampaignSuggestion).where(
            CampaignSuggestion.id == suggestion_id, CampaignSuggestion.state == "proposed").values(
            state="rejected", reason=reason, decided_by=actor, decided_at=time.time())).rowcount
        if changed != 1:
            raise SuggestionError(f"suggestion {suggestion_id} was decided meanwhile")
        state._event(conn, store, "campaign.suggestion.rejected", {
            "campaign_id": campaign_id, "suggestion_id": suggestion_id, "reason": reason}, actor)


def budget_left(store: Any, campaign_id: int) -> tuple[int, int]:
    """(cells the budget still allows, room in the batch now): cells recorded and proposals count; rejected
    proposals do not."""
    camp = state.get(store, campaign_id)
    spec = model_of(camp).planner
    assert spec is not None
    prog = state.progress(store, campaign_id)
    proposed = len(pending(store, campaign_id))
    in_flight = prog["unsubmitted"] + prog["pending"] + proposed
    left = spec.budget - prog["points"] - proposed
    return left, max(0, min(spec.batch - in_flight, left))


def spent(store: Any, campaign_id: int) -> bool:
    """The budget is spent and no proposal awaits a decision: the campaign may finish once its cells are
    observed (a proposal left pending by `--approve` + quit must stay decidable, so it keeps it open)."""
    return budget_left(store, campaign_id)[0] <= 0 and not pending(store, campaign_id)


def top_up(store: Any, campaign_id: int, *, actor: str | None = None) -> list[int]:
    """Propose as many points as the batch has room for (none once the budget is spent)."""
    _left, room = budget_left(store, campaign_id)
    return propose(store, campaign_id, room, actor=actor) if room > 0 else []


def start(store: Any, loaded: Any, *, simulate: bool, actor: str | None = None) -> int:
    """Record a planner campaign (no points yet; the planner's seed, drawn if the file gives none, is the
    campaign's recorded seed). Nothing is proposed here: the drive loop proposes its first batch."""
    from labctl.campaign.design import Design

    spec = loaded.model.planner
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
    return state.create(store, loaded, Design(f"{KIND_PREFIX}{spec.name}"[:40], seed, []), simulate=simulate,
                        actor=actor)


def run_loop(store: Any, campaign_id: int, *, run_batch: Any, decide: Any = None, actor: str | None = None,
             say: Any = lambda s: None) -> None:
    """Close the loop until the budget is spent and every cell is observed: propose, decide (`decide(store,
    campaign_id, proposals)`, False to stop; None approves each as suggested), run what was queued
    (`run_batch()`, False: gave up waiting), observe, and again."""
    who = actor or getpass.getuser()
    camp = state.get(store, campaign_id)
    if camp["state"] != "running":  # finished or cancelled: nothing is proposed or approved any more
        say(f"campaign {campaign_id} is {camp['state']}: nothing to propose or approve")
        return
    queued_as = "fabrication request" if state.is_linked(camp) else "request"
    while True:
        top_up(store, campaign_id, actor=who)
        props = pending(store, campaign_id)
        if props:
            if decide is None:
                for s in props:
                    rid = approve(store, campaign_id, s["id"], actor=who)
                    say(f"suggestion {s['id']} queued as {queued_as} {rid}: {s['values']}" if rid is not None
                        else f"suggestion {s['id']} refused by its plan: {s['values']}")
            elif decide(store, campaign_id, props) is False:  # the person stopped: resume goes on from here
                return
        prog = state.progress(store, campaign_id)
        if prog["unsubmitted"] + prog["pending"] == 0 and not pending(store, campaign_id):
            if budget_left(store, campaign_id)[0] <= 0 or not props:
                return
            continue
        done = run_batch()
        state.observe(store, campaign_id, actor=who)
        if done is False:  # the wait gave up: `labctl campaign resume` goes on
            return
