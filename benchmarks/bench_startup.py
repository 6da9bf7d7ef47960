"""CLI start-up: wall time of `labctl version`, `--help`, `runs list` and `validate` against `python -c pass`.

Each command runs N times as a fresh process (`python -m labctl ...` on this checkout's sources), the commands
interleaved round by round so that a burst of load on a shared machine hits all of them alike; the table gives
each one's median and its median minus the same-run baseline (`python -c pass`), next to the goal of issue 18
(version and --help ≤ 0.2 s, runs list ≤ 0.4 s, validate of one file ≤ 0.5 s). `runs list` reads a fresh
SQLite database holding 20 recorded runs; `validate` reads the largest shipped protocol. On a shared machine
the wall time includes waiting for a CPU, so the children's CPU time (user + system) is given too.
`--before SRC` times the same commands on another source tree (e.g. `git archive` of the previous commit) in
the same rounds, for a before/after comparison.

Bytecode: an installed labctl has its `.pyc` files (pip compiles at install), but a checkout run with
PYTHONDONTWRITEBYTECODE=1 (as on the shared development machine) compiles each of its ~100 modules from source
on every start, which is ~0.1 s of `validate`. By default the children therefore keep their bytecode in a
private folder of this run (PYTHONPYCACHEPREFIX, filled by the warm-up round; nothing is written into the
source tree): the start-up a user sees. `--no-bytecode` times them compiling every time instead.

Usage: python benchmarks/bench_startup.py [-n 15] [--before /tmp/labctl-before/src] [--no-bytecode] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    ap.add_argument("--before", type=Path, help="another labctl source tree (its src/) to time alongside")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="no .pyc cache: every module compiled from source on every start")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="labctl-bench-startup-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "LABCTL_AUDIT_KEY": str(folder / "audit.key"),
               "COLUMNS": "100"}
        env.pop("LABCTL_DB", None)
        if args.no_bytecode:
            env.pop("PYTHONPYCACHEPREFIX", None)
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        db = make_db(folder, env)
        py = [sys.executable]
        labctl = {
            "labctl version": (["version"], 0.2),
            "labctl --help": (["--help"], 0.2),
            "labctl runs list": (["runs", "list", "--db", db], 0.4),
            "labctl validate (1 file)": (["validate", str(PROTOCOL)], 0.5),
        }
        commands: dict[str, tuple[list[str], float | None, dict[str, str]]] = {
            "python -c pass (baseline)": ([*py, "-c", "pass"], None, env)
        }
        for name, (argv, goal) in labctl.items():
            commands[name] = ([*py, "-m", "labctl", *argv], goal, env)
        if args.before is not None:
            before = {**env, "PYTHONPATH": str(args.before.resolve())}
            for name, (argv, _) in labctl.items():
                commands[f"{name} (before)"] = ([*py, "-m", "labctl", *argv], None, before)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for cmd, _, e in commands.values():  # warm the page cache and the unit-registry cache once
            subprocess.run(cmd, env=e, cwd=ROOT, capture_output=True, check=True)
        for _ in range(args.n):
            for name, (cmd, _, e) in commands.items():
                used = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(cmd, env=e, cwd=ROOT, capture_output=True, check=True)
                times[name].append(time.perf_counter() - start)
                now = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)

    base = statistics.median(times["python -c pass (baseline)"])
    rows = []
    for name, (_, goal, _) in commands.items():
        med = statistics.median(times[name])
        rows.append({"command": name, "median_s": med, "min_s": min(times[name]),
                     "over_baseline_s": med - base, "cpu_s": statistics.median(cpu[name]), "goal_s": goal,
                     "meets_goal": None if goal is None else med <= goal})
    if args.json:
        print(json.dumps({"n": args.n, "bytecode": not args.no_bytecode, "load": os.getloadavg()[0],
                          "rows": rows}, indent=2))
        return
    print(f"CLI start-up, median of {args.n} runs each (interleaved), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}, "
          + ("no bytecode cache" if args.no_bytecode else "bytecode cached (as installed)"))
    print(f"{'command':<37}{'median':>8}{'min':>8}{'- base':>8}{'cpu':>8}{'goal':>6}  ok")
    for r in rows:
        goal = f"{r['goal_s']:.1f}" if r["goal_s"] is not None else ""
        ok = "" if r["meets_goal"] is None else ("yes" if r["meets_goal"] else "NO")
        print(f"{r['command']:<37}{r['median_s']:>7.3f}s{r['min_s']:>7.3f}s{r['over_baseline_s']:>7.3f}s"
              f"{r['cpu_s']:>7.3f}s{goal:>6}  {ok}")


if __name__ == "__main__":
    main()
