"""CLI start-up: wall time of `labctl version`, `--help`, `runs list` and `validate` against `python -c pass`.

Each command runs N times as a fresh process (`python -m labctl ...` on this checkout's sources), the commands
interleaved round by round so that a burst of load on a shared machine hits all of them alike; the table gives
each one's median and its median minus the same-run baseline (`python -c pass`), next to the goal of issue 18
(version and --help ≤ 0.2 s, runs list ≤ 0.4 s, validate of one file ≤ 0.5 s). `runs list` reads a fresh
SQLite database holding 20 recorded runs; `validate` reads the largest shipped protocol.

Usage: python benchmarks/bench_startup.py [-n 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "li-in-alloy-cycle.yaml"


def make_db(folder: Path, env: dict[str, str]) -> str:
    """A database with 20 runs of two steps each, written by the store in a child process."""
    url = f"sqlite:///{folder / 'runs.db'}"
    script = (
        "from labctl.store import Store\n"
        f"s = Store.open({url!r})\n"
        "for i in range(20):\n"
        "    s.create_run(protocol_name=f'Li-In alloy {i}', protocol_path='p.yaml',\n"
        "                 protocol_text='labctl: 1', parameters={}, station_name='sim',\n"
        "                 station_text='name: sim', operator='bench', mode='dry-run', seed=i,\n"
        "                 sample_id=f'LIN-{i:03d}',\n"
        "                 steps=[{'index': k, 'kind': 'wait', 'params': {'duration': 1.0}}\n"
        "                        for k in range(2)])\n"
        "s.flush(); s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=folder)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15, help="runs of each command (median reported)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="labctl-bench-startup-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LABCTL_AUDIT_KEY": str(folder / "audit.key"),
               "COLUMNS": "100"}
        env.pop("LABCTL_DB", None)
        db = make_db(folder, env)
        py = [sys.executable]
        commands: dict[str, tuple[list[str], float | None]] = {
            "python -c pass (baseline)": ([*py, "-c", "pass"], None),
            "labctl version": ([*py, "-m", "labctl", "version"], 0.2),
            "labctl --help": ([*py, "-m", "labctl", "--help"], 0.2),
            "labctl runs list": ([*py, "-m", "labctl", "runs", "list", "--db", db], 0.4),
            "labctl validate (1 file)": ([*py, "-m", "labctl", "validate", str(PROTOCOL)], 0.5),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd, _ in commands.values():  # warm the page cache and the unit-registry cache once
            subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
        for _ in range(args.n):
            for name, (cmd, _) in commands.items():
                start = time.perf_counter()
                subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=True)
                times[name].append(time.perf_counter() - start)

    base = statistics.median(times["python -c pass (baseline)"])
    rows = []
    for name, (_, goal) in commands.items():
        med = statistics.median(times[name])
        rows.append({"command": name, "median_s": med, "min_s": min(times[name]),
                     "over_baseline_s": med - base, "goal_s": goal,
                     "meets_goal": None if goal is None else med <= goal})
    if args.json:
        print(json.dumps({"n": args.n, "rows": rows}, indent=2))
        return
    print(f"CLI start-up, median of {args.n} runs each (interleaved), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<28}{'median':>9}{'min':>9}{'- base':>9}{'goal':>8}  ok")
    for r in rows:
        goal = f"{r['goal_s']:.1f}" if r["goal_s"] is not None else ""
        ok = "" if r["meets_goal"] is None else ("yes" if r["meets_goal"] else "NO")
        print(f"{r['command']:<28}{r['median_s']:>8.3f}s{r['min_s']:>8.3f}s{r['over_baseline_s']:>8.3f}s"
              f"{goal:>8}  {ok}")


if __name__ == "__main__":
    main()
