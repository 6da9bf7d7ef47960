"""The web app in a real Chromium (Debian's package) through Playwright: log in, the runs list, a run page
whose plot draws and zooms, the audit verify button. Screenshots of each page go to $LABCTL_SCREENSHOTS (or
the test's temporary folder) to be looked at.

Skips with the reason when Playwright or /usr/bin/chromium is missing (`make test` without a browser).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no Chromium: apt-get install chromium (browser tests skipped)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
pytest.importorskip("fastapi", reason="the web extra is not installed")

import uvicorn  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

import labctl  # noqa: E402
from labctl.web import users  # noqa: E402
from labctl.web.app import create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from web_helpers import HOSTILE, HOSTILE_NAME, LONG  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str]]:
    """`labctl serve` on a store with one completed hostile-named dry run; (base URL, run id, db)."""
    folder = tmp_path_factory.mktemp("browser")
    (folder / "hostile.yaml").write_text(HOSTILE)
    db = str(folder / "lab.db")
    with labctl.connect(db) as lab:
        run_id = lab.submit(folder / "hostile.yaml", seed=5).wait(180).id
        users.add_user(lab.store, "ada", "admin", "admin-pass-1234", actor="test")
    app = create_app(db, secret=b"browser")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run_id, db
    srv.should_exit = True
    thread.join(10)
    app.state.lab.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("LABCTL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_login_runs_run_zoom_verify(server: tuple[str, int, str], shots: Path) -> None:
    base, run_id, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: problems.append("dialog: " + d.message))  # an alert() would be XSS

        page.goto(base + "/runs")
        assert page.url.endswith("/login")
        page.screenshot(path=str(shots / "login.png"))
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", "admin-pass-1234")
        page.click("button[type=submit]")
        page.wait_for_url(base + "/runs")
        assert page.get_by_role("link", name=HOSTILE_NAME).count() == 1  # the name as text
        page.screenshot(path=str(shots / "runs.png"), full_page=True)

        page.click(f"a[href=\"/runs/{run_id}\"] >> nth=1")
        page.wait_for_selector("#plot canvas")
        # (locator waits: the page's CSP forbids the eval behind wait_for_function, as it should)
        expect(page.locator("#plot-info")).to_contain_text("points shown")
        info = page.inner_text("#plot-info")
        page.screenshot(path=str(shots / "run.png"), full_page=True)

        box = page.locator("#plot .u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        expect(page.locator("#plot-info")).not_to_have_text(info)
        zoomed = page.inner_text("#plot-info")
        shown, total = (int(x) for x in zoomed.split(" points")[0].split(" of "))
        assert total < 7212 and shown == total  # the window at full resolution
        page.screenshot(path=str(shots / "run-zoomed.png"))

        page.click("text=Verify audit")
        page.wait_for_selector("#verify-result .ok")
        assert "Audit OK" in page.inner_text("#verify-result")
        page.locator("#verify-result").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "run-verified.png"))

        page.click("#io button:has-text('Next')")  # the transcript pages through HTMX
        expect(page.locator("#io")).to_contain_text("page 2 of")
        page.locator("#io").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "run-transcript.png"))
        browser.close()
    assert problems == [], problems


def test_live_run_updates_and_is_paused_resumed_aborted_from_the_page(server, shots: Path,
                                                                      tmp_path: Path) -> None:
    base, _, db = server
    (tmp_path / "live.yaml").write_text(LONG)
    with labctl.connect(db) as lab:
        sub = lab.submit(tmp_path / "live.yaml", seed=3, realtime=True)
        run_id = sub.wait_started(60)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                problems: list[str] = []
                page.on("pageerror", lambda e: problems.append(str(e)))

                def on_dialog(d) -> None:  # only the abort confirmation may ask
                    if d.type == "confirm" and d.message.startswith(f"Abort run {run_id}?"):
                        d.accept()
                    else:
                        problems.append("dialog: " + d.message)
                        d.dismiss()

                page.on("dialog", on_dialog)
                page.goto(base + "/login")
                page.fill("input[name=username]", "ada")
                page.fill("input[name=password]", "admin-pass-1234")
                page.click("button[type=submit]")
                page.wait_for_url(base + "/runs")
                page.goto(f"{base}/runs/{run_id}")
                info = page.locator("#plot-info")
                expect(info).to_contain_text("(live)", timeout=10_000)
                first = int(info.inner_text().split()[0])
                expect(info).not_to_contain_text(f"{first} points", timeout=3_000)  # grew within ~2 s
                page.screenshot(path=str(shots / "run-live.png"))
                while lab.run(run_id).steps.loc[0, "status"] == "running":  # pause acts in the wait step
                    time.sleep(0.2)
                page.click("button:has-text('pause')")
                expect(page.locator("#control-result")).to_contain_text("pause sent")
                expect(page.locator("#run-state")).to_have_text("paused", timeout=10_000)
                page.screenshot(path=str(shots / "run-paused.png"))
                page.click("button:has-text('resume')")
                expect(page.locator("#run-state")).to_have_text("running", timeout=10_000)
                page.click("button:has-text('abort')")
                expect(page.locator("#run-state")).to_have_text("aborted", timeout=15_000)
                browser.close()
            assert problems == [], problems
            assert sub.wait(60).state == "aborted"
            actors = [e["actor"] for e in lab.store.events(run_id) if e["kind"] == "control.posted"]
            assert actors == ["ada", "ada", "ada"]
        finally:
            if lab.run(run_id).state not in ("aborted", "completed", "failed"):
                sub.abort()
                sub.wait(60)
