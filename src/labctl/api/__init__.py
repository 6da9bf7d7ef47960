"""labctl.api: the one face of labctl for notebooks, scripts, the CLI and the web app (DESIGN.md §11).

    import labctl
    lab = labctl.connect()                      # --db / $LABCTL_DB / ./labctl.db
    lab.runs(state="completed")                 # DataFrame, one row per run
    run = lab.run(12)
    run.provenance, run.steps, run.events, run.io
    run.data("cycling")                         # DataFrame, units in df.attrs["units"]
    run.report(), run.verify()
    labctl.Protocol.load("protocols/eis.yaml").plan("stations/simulated.yaml")
    sub = lab.submit("protocols/eis.yaml", simulate=True, seed=1)   # returns at once
    sub.progress; sub.pause(); sub.resume(); sub.abort(); sub.wait(60)

    lab.campaign(1).observations()              # a campaign's cells: failed/censored/excluded, hours
"""

from labctl.api.lab import Lab, connect
from labctl.api.protocol import Protocol
from labctl.api.runs import STREAM_UNITS, RunHandle, Verification
from labctl.api.submit import Submission, SubmitError

__all__ = [
    "STREAM_UNITS",
    "Lab",
    "Protocol",
    "RunHandle",
    "Submission",
    "SubmitError",
    "Verification",
    "connect",
]
