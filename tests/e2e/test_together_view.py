"""The "Together" tab on a task-instance page, in headless chromium on the real local Airflow.

One deferred fine-tune whose job stalls mid-training (a running job), then completes (a finished job): each
time the tab's frame must show the status, the loss curve and the events, and never the API key. The
screenshots land in test-output/e2e/ (docs/ui.png is a copy of the finished one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from e2e_support import E2E_API_KEY, REPO, wait_for
from test_connection_form import CHROMIUM_FLAGS

if TYPE_CHECKING:
    from local_airflow import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAG, TASK = "e2e_together_view", "fine_tune"
#: The page reloads every 10 s while the job runs, and the machine is shared: be generous.
UI_TIMEOUT_MS = 120_000
T = TypeVar("T")


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str) -> T:
    """Like ``wait_for``, but a slow answer of the API server is one more try, not a failure.

    On this shared 2-core machine, SQLite sometimes holds the single api-server worker for longer than the REST
    client's 30 s timeout (seen: 41 s for a task's first ``PATCH .../run``); that says nothing about the tab.
    """

    def attempt() -> T | None:
        try:
            return fetch()
        except (httpx.HTTPError, RuntimeError):
            return None

    result = wait_for(attempt, lambda value: value is not None and done(value), timeout=timeout, what=what)
    assert result is not None
    return result


def _finished_state(airflow: LocalAirflow, dag_id: str, run_id: str, *, timeout: float) -> str:
    """The run's final state (``success`` or ``failed``), waited for with :func:`_poll`'s patience."""
    state: str = _poll(
        lambda: airflow.rest.dag_run(dag_id, run_id)["state"],
        lambda value: value in ("success", "failed"),
        timeout=timeout,
        what=f"{dag_id}/{run_id} finished",
    )
    return state


def _signed_in_page(browser: Any, airflow: LocalAirflow) -> Any:
    """A page that has been through the UI's sign-in: Airflow 3.1 sends a first visit to ``/`` for a token.

    Only then does a deep link to a task-instance tab open that tab. 3.3 with all-admins needs no sign-in (and
    sets no ``_token`` cookie).
    """
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.set_default_timeout(UI_TIMEOUT_MS)
    if _airflow_33(airflow):
        return page
    page.goto(f"{airflow.url}/")
    wait_for(
        page.context.cookies,
        lambda cookies: any(cookie["name"] == "_token" for cookie in cookies),
        timeout=UI_TIMEOUT_MS / 1000,
        what="the UI's _token cookie",
    )
    return page


def _open(page: Any, url: str) -> None:
    """Open ``url``; on Airflow 3.1 the UI's sign-in may still redirect to ``/`` once, so open it again then."""
    from playwright.sync_api import Error

    for attempt in range(3):
        try:
            page.goto(url)
            return
        except Error as exc:
            if "interrupted by another navigation" not in str(exc) or attempt == 2:
                raise
            page.wait_for_load_state("load")


def _job(emulator: Any, job_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {E2E_API_KEY}"}
    return dict(httpx.get(f"{emulator.base_url}/fine-tunes/{job_id}", headers=headers, timeout=10).json())


def _start_stalled_run(airflow: LocalAirflow, emulator: Any, suffix: str) -> tuple[str, str]:
    """Trigger a deferrable fine-tune whose job stalls mid-training; return (run_id, job_id) once training."""
    emulator.admin.add_scenario("stall", suffix=suffix, at=0.5)
    airflow.rest.wait_for_dag(DAG, timeout=300)
    run_id = airflow.rest.trigger(DAG, {"suffix": suffix})
    _poll(lambda: airflow.rest.task_instance(DAG, run_id, TASK)["state"], "deferred".__eq__, timeout=300,
          what="the fine-tune deferred")  # fmt: skip
    job_id = _poll(
        lambda: airflow.rest.xcom(DAG, run_id, TASK, "job_id"), bool, timeout=60, what="job_id XCom"
    )
    _poll(
        lambda: _job(emulator, str(job_id)).get("steps_completed"), bool, timeout=120, what="training steps"
    )
    return run_id, str(job_id)


def test_together_tab_shows_a_running_then_a_finished_job(
    airflow: LocalAirflow, emulator: Any, chromium_path: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    # expect() waits 5 s by default; the UI loads its plugin list (and so the tab) after the page itself.
    expect.set_options(timeout=UI_TIMEOUT_MS)

    run_id, job_id = _start_stalled_run(airflow, emulator, "e2e-view")
    out_dir = REPO / "test-output" / "e2e"
    out_dir.mkdir(parents=True, exist_ok=True)
    tab_url = f"{airflow.url}/dags/{DAG}/runs/{quote(run_id, safe='')}/tasks/{TASK}/plugin/together"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = _signed_in_page(browser, airflow)
            _open(page, tab_url)
            # The tab is in the task instance's tab bar, and its frame is our app under /together.
            expect(page.locator('a[href$="/plugin/together"]').first).to_be_visible()
            frame = page.frame_locator("iframe")
            expect(frame.locator("#job-id")).to_have_text(job_id)
            expect(frame.locator("#job-status")).to_have_text("running")
            expect(frame.locator("#loss-curve polyline.train-loss")).to_have_count(1)
            expect(frame.locator("#events")).to_contain_text("[training_start]")
            page.screenshot(path=str(out_dir / "together-view-running.png"), full_page=True)

            emulator.admin.set_job_scenario(job_id, "complete")
            assert _finished_state(airflow, DAG, run_id, timeout=300) == "success"
            page.reload()
            frame = page.frame_locator("iframe")
            expect(frame.locator("#job-status")).to_have_text("completed")
            expect(frame.locator("#loss-curve polyline.train-loss")).to_have_count(1)
            expect(frame.locator("#events")).to_contain_text("[job_complete]")
            expect(frame.locator("#checkpoints")).to_be_visible()
            expect(frame.locator("body")).to_contain_text("final $")
            shot = out_dir / "together-view.png"
            page.screenshot(path=str(shot), full_page=True)
            frame_html = page.frames[-1].content()
        finally:
            browser.close()

    assert shot.stat().st_size > 20_000
    assert E2E_API_KEY not in frame_html
    assert job_id in frame_html


def _airflow_33(airflow: LocalAirflow) -> bool:
    version = str(airflow.rest.request("GET", "/version")["version"])
    return tuple(int(part) for part in version.split(".")[:2]) >= (3, 3)


def test_together_tab_of_a_mapped_task_shows_that_map_index_job(
    airflow: LocalAirflow, emulator: Any, chromium_path: str
) -> None:
    """``.../mapped/<i>/plugin/together`` reads map index i's XCom: its job id and the estimate it recorded."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)
    dag = "e2e_together_view_mapped"
    airflow.rest.wait_for_dag(dag, timeout=300)
    run_id = airflow.rest.trigger(dag, {})
    assert _finished_state(airflow, dag, run_id, timeout=600) == "success"
    jobs = {i: str(airflow.rest.xcom(dag, run_id, TASK, "job_id", map_index=i)) for i in (0, 1)}
    # On Airflow < 3.3 a try that reattached (a cold start can fail a first try here) has no estimate to carry
    # (no task state store): the tab then estimates the job once itself. On 3.3 every try has the XCom.
    estimates = {
        i: airflow.rest.xcom_or_none(dag, run_id, TASK, "estimated_price_usd", map_index=i) for i in (0, 1)
    }
    assert jobs[0] != jobs[1]
    if _airflow_33(airflow):
        assert all(isinstance(value, (int, float)) and value > 0 for value in estimates.values()), estimates
    base = f"{airflow.url}/dags/{dag}/runs/{quote(run_id, safe='')}/tasks/{TASK}/mapped"
    out_dir = REPO / "test-output" / "e2e"
    out_dir.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = _signed_in_page(browser, airflow)
            for index in (1, 0):
                _open(page, f"{base}/{index}/plugin/together")
                expect(page.locator('a[href$="/plugin/together"]').first).to_be_visible()
                frame = page.frame_locator("iframe")
                expect(frame.locator("#job-id")).to_have_text(jobs[index])
                expect(frame.locator("#job-status")).to_have_text("completed")
                recorded = estimates[index]
                shown = f"estimated ${recorded:,.2f}" if recorded is not None else "estimated $"
                expect(frame.locator("body")).to_contain_text(shown)
                expect(frame.locator("#loss-curve polyline.train-loss")).to_have_count(1)
                page.screenshot(path=str(out_dir / f"together-view-mapped-{index}.png"), full_page=True)
        finally:
            browser.close()
