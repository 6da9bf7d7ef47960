"""The example notebooks, executed in a real Jupyter kernel (nbclient), their outputs checked.

Each notebook ends with a cell that asserts its run(s) completed and prints an `OK: ...` line with a metric;
this test reads that line back and checks the metric is a finite number, and that no cell wrote an error.
Skipped, saying why, when nbclient or a Python kernel is not installed (`pip install 'labctl[dev]'`).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
OK_LINE = {
    "dry-run-analysis.ipynb": r"OK: run \d+ completed; overpotential at cycle 10 = ([-\d.e+]+) mV; "
    r"audit verified",
    "coated-vs-bare.ipynb": r"OK: both runs completed; overpotential at cycle 10: bare ([-\d.e+]+) mV, "
    r"coated ([-\d.e+]+) mV; coated R_film ([-\d.e+]+) ohm",
    "small-campaign.ipynb": r"OK: campaign \d+ finished; (\d+) cells, \d+ censored, \d+ failed; "
    r"median hours ([-\d.e+]+)",
}


def _kernel_or_skip() -> None:
    pytest.importorskip("nbclient", reason="nbclient not installed (pip install 'labctl[dev]')")
    pytest.importorskip("ipykernel", reason="ipykernel not installed (pip install 'labctl[dev]')")
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no 'python3' Jupyter kernel is installed (python -m ipykernel install --sys-prefix)")


def _text(cell: dict) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
    return "".join(out)


def test_every_notebook_is_checked() -> None:
    assert {p.name for p in NOTEBOOKS} == set(OK_LINE)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kernel_or_skip()
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("LABCTL_DB", str(tmp_path / "notebook.db"))  # the kernel inherits the environment
    monkeypatch.setenv("LABCTL_FIGURES", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    start = time.monotonic()
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    elapsed = time.monotonic() - start
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    match = re.search(OK_LINE[path.name], _text(code[-1]))
    assert match, _text(code[-1])
    assert all(math.isfinite(float(x)) for x in match.groups())
    assert list(tmp_path.glob("*.png")), "the notebook saved no figure"
    print(f"{path.name}: {elapsed:.1f} s")
