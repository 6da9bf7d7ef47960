"""A 24-cell linked campaign dry-run end to end, against 24 sequential `labctl run` calls in the same run.

The campaign is `campaigns/li-in-24-cells.yaml`: 4 immersion times x 3 InCl3 concentrations x 2 replicates;
each cell a fabrication run on the simulated bench (one at a time), then a test run (assembly, OCV, EIS, up to
500 cycles = 1000 h at 1 s sampling, EIS) on any free channel of the simulated 8-channel cycler. Timed:
`labctl campaign run ... --simulate --max-parallel P` as one process tree (the campaign process, its warm
launcher and every run process forked from it: the runs outlive the campaign process by design, so this
script makes itself their subreaper to keep them in the tree): wall time, the peak of the tree's summed RSS,
sampled every 50 ms with psutil, and the tree's CPU time.

Baseline: the same 24 cells as 24 sequential `labctl run --simulate` calls, each of one protocol doing both
(the fabrication's steps then the test's, the cell's parameters), on the simulated bench, same store kind,
same machine, same run. The load average is printed before and after (the machine is shared).

Usage: python benchmarks/bench_campaign.py [--max-parallel 2] [--cells 24] [--no-baseline] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "campaigns" / "li-in-24-cells.yaml"
SAMPLE_S = 0.05


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`): the warm
    launcher double-forks each run so that it outlives the campaign process, and without this the runs would
    be init's children, outside the tree whose memory and CPU are measured. False where it is not
    available."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Collect the runs (and any other orphan) that ended under this subreaper: their CPU counts in
    RUSAGE_CHILDREN only once they are waited for."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def tree_rss(proc: psutil.Process) -> int:
    """Summed RSS (bytes) of `proc` and all its descendants now (runs forked by the launcher share its
    imported pages copy-on-write: summing RSS counts those pages once per run, an overestimate)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
        if proc.pid != os.getpid():  # the launcher's runs, reparented to this process (`become_subreaper`)
            procs += [p for p in psutil.Process().children(recursive=True) if p.pid != proc.pid
                      and p not in procs]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # a run process that just ended
            total += p.memory_info().rss
    return total


CPU: dict[str, float] = {}  # of the last `timed` command: "tree" (it and all it reaped), "own" (its process)


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, int, int]:
    """(wall s, peak tree RSS bytes, exit code) of `cmd`, its run processes included (its children, or
    forked by its warm launcher and reparented to this subreaper). CPU seconds go to `CPU`."""
    peak, own = 0, 0.0
    done = threading.Event()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        ps = psutil.Process(child.pid)

        def sample() -> None:
            nonlocal peak, own
            while not done.is_set():
                peak = max(peak, tree_rss(ps))
                with contextlib.suppress(psutil.Error):
                    t = ps.cpu_times()
                    own = t.user + t.system
                done.wait(SAMPLE_S)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        rc = child.wait()
        done.set()
        th.join()
    wall = time.perf_counter() - t0
    reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.update(tree=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), own=own)
    return wall, peak, rc


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def combined_protocol(fab: Path, test: Path, out: Path) -> Path:
    """One protocol doing the fabrication's steps then the test's (parameters of both): a baseline cell."""
    from labctl.protocol.safeyaml import load

    a, b = load(fab.read_text(), str(fab)).data, load(test.read_text(), str(test)).data
    doc = {"labctl": 1, "name": "baseline cell (fabrication + test in one run)", "sample": a["sample"],
           "parameters": {**a.get("parameters", {}), **b.get("parameters", {})},
           "steps": [*a["steps"], *b["steps"]]}
    out.write_text(json.dumps(doc, indent=1))  # JSON is YAML: the safe loader reads it
    return out


def breakdown(db_file: Path, env: dict[str, str]) -> None:
    """Where the campaign's wall time went, from the request and run rows: process start-up (launched -> run
    row), the runs themselves, the tail (run ended -> request ended: the process writing its summary and
    exiting), per role."""
    import statistics

    from sqlalchemy import create_engine, select

    from labctl.store.models import Run, RunRequest

    eng = create_engine(f"sqlite:///{db_file}")
    with eng.connect() as c:
        runs = {r.id: r for r in c.execute(select(Run.id, Run.created_at, Run.ended_at)).all()}
        reqs = c.execute(select(RunRequest.protocol_name, RunRequest.created_at, RunRequest.ended_at,
                                RunRequest.run_id, RunRequest.process)).all()
    eng.dispose()
    t0 = min(r.created_at for r in reqs)
    for role in ("fabrication", "test"):
        rs = [r for r in reqs if f"({role})" in r.protocol_name and r.run_id in runs]
        if not rs:
            continue
        start = [runs[r.run_id].created_at - r.process["launched_at"] for r in rs]
        run = [runs[r.run_id].ended_at - runs[r.run_id].created_at for r in rs]
        tail = [r.ended_at - runs[r.run_id].ended_at for r in rs]
        med = statistics.median
        forked = sum(str(r.process.get("via", "")).startswith("launcher") for r in rs)
        print(f"  {role}: {len(rs)} runs ({forked} forked by the warm launcher); start-up median "
              f"{med(start):.2f} s (sum {sum(start):.0f} s), run "
              f"median {med(run):.2f} s (sum {sum(run):.0f} s), tail median {med(tail):.2f} s (sum "
              f"{sum(tail):.0f} s); last ended at {max(r.ended_at for r in rs) - t0:.0f} s")


def cycled_points(db_file: Path) -> int:
    """Points the cycling steps of a store recorded (each dry run draws its own seed, so the lives, and with
    them the work, differ between the campaign and the baseline: compare per point too)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT summary FROM steps WHERE kind = 'cycle_symmetric'").fetchall()
    finally:
        con.close()
    return sum(int(json.loads(s)["points"]) for (s,) in rows if s)


def campaign_cells(db: str, env: dict[str, str]) -> dict:
    r = subprocess.run([sys.executable, "-m", "labctl", "campaign", "status", "1", "--json", "--db", db],
                       capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-parallel", type=int, default=2, help="test runs at a time over the 8 channels")
    ap.add_argument("--cells", type=int, default=24, help="baseline cells (24: all)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep the stores and logs here")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(work / "audit.key"), "LABCTL_SPOOL": str(work / "spool"),
           "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("LABCTL_DB", None)
    if not become_subreaper():
        print("warning: not a subreaper: runs forked by the launcher are outside the measured tree")
    print(f"machine: {os.cpu_count()} cores; load average before: {load_avg()}")

    db = f"sqlite:///{work / 'campaign.db'}"
    wall, peak, rc = timed([sys.executable, "-m", "labctl", "campaign", "run", str(CAMPAIGN), "--simulate",
                            "--max-parallel", str(args.max_parallel), "--db", db], env, work / "campaign.log")
    if rc != 0:
        sys.exit(f"campaign failed ({rc}): see {work / 'campaign.log'}")
    status = campaign_cells(db, env)
    prog = status["progress"]
    runs = [p for p in status["points"] if p["run_id"]]
    print(f"campaign: {prog['points']} cells, {len(status['lineage'])} lineage rows; failed "
          f"{prog['failed']}, censored {prog['censored']}, excluded {prog['excluded']}; state "
          f"{status['campaign']['state']}")
    hours = [p["hours"] for p in runs if p["hours"] is not None]
    points = cycled_points(work / "campaign.db")
    print(f"  cycled: {sum(hours):.0f} cell-hours, {points / 1e6:.1f} M points recorded at 1 s")
    print(f"  wall {wall:.1f} s, peak RSS of the process tree {peak / 2**20:.0f} MiB "
          f"(--max-parallel {args.max_parallel}); load average after: {load_avg()}")
    print(f"  CPU: {CPU['tree']:.1f} s over the tree, {CPU['own']:.1f} s of it in the campaign process")
    breakdown(work / "campaign.db", env)
    if args.no_baseline:
        return
    from labctl.campaign import load_campaign

    c = load_campaign(CAMPAIGN)
    proto = combined_protocol(Path(c.protocols["fabrication"].path), Path(c.protocols["test"].path),
                              work / "cell.yaml")
    station = ROOT / "stations" / "simulated.yaml"
    bdb = f"sqlite:///{work / 'baseline.db'}"
    cells = sorted(status["points"], key=lambda p: p["seq"])[: args.cells]
    total, bpeak, bcpu = 0.0, 0, 0.0
    for p in cells:
        cmd = [sys.executable, "-m", "labctl", "run", str(proto), "--station", str(station), "--simulate",
               "--json", "--db", bdb, "--sample", f"baseline-{p['seq'] + 1:03d}"]
        for k, v in p["values"].items():
            cmd += ["-p", f"{k}={v}"]
        w, pk, rc = timed(cmd, env, work / "baseline.log")
        if rc != 0:
            sys.exit(f"baseline run failed ({rc}): see {work / 'baseline.log'}")
        total, bpeak, bcpu = total + w, max(bpeak, pk), bcpu + CPU["tree"]
    scale = len(status["points"]) / len(cells)
    print(f"baseline: {len(cells)} sequential `labctl run` calls: {total:.1f} s"
          + (f" (x{scale:.2f} = {total * scale:.1f} s for 24)" if scale != 1 else "")
          + f", peak RSS {bpeak / 2**20:.0f} MiB, CPU {bcpu:.1f} s; load average after: {load_avg()}")
    bpoints = cycled_points(work / "baseline.db")
    print(f"  cycled: {bpoints / 1e6:.1f} M points recorded at 1 s")
    print(f"campaign / baseline wall: {wall / (total * scale):.2f}; per M points: "
          f"{(wall / points) / (total / bpoints):.2f}")


if __name__ == "__main__":
    main()
