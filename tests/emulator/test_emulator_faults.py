"""Injected faults per route, job scenarios, and the request counters tests assert on."""

from __future__ import annotations

import time

import httpx
import pytest
from _emu_helpers import ready_file, wait_status

from airflow_provider_together.emulator import Emulator
from airflow_provider_together.emulator.faults import FaultKind, parse_fault_spec

MODEL = "Qwen/Qwen3-8B"
TERMINAL = {"completed", "cancelled", "error", "user_error"}


def test_a_burst_of_429_with_retry_after_then_recovery(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    rule = together_emulator.admin.add_fault(
        "GET /v1/fine-tunes", "status", status=429, count=2, retry_after=1.5
    )
    answers = [api.get("/fine-tunes") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1.5"
    assert answers[0].json()["error"]["type"] == "rate_limit_exceeded"
    assert together_emulator.admin.faults()[0]["hits"] == 2
    together_emulator.admin.remove_fault(rule["id"])
    assert together_emulator.admin.faults() == []


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_use_the_api_error_shape(
    together_emulator: Emulator, api: httpx.Client, status: int
) -> None:
    together_emulator.admin.add_fault("GET /v1/fine-tunes/{job_id}", "status", status=status)
    answer = api.get("/fine-tunes/ft-anything")
    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert api.get("/fine-tunes").status_code == 200  # other routes unaffected


def test_error_rate_is_probabilistic(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.add_fault("GET /v1/*", "status", status=500, rate=0.5)
    codes = [api.get("/fine-tunes").status_code for _ in range(60)]
    assert 5 < codes.count(500) < 55
    assert set(codes) == {200, 500}


def test_latency_is_added(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.add_fault("*", "latency", latency_ms=300)
    started = time.monotonic()
    assert api.get("/fine-tunes").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_dropped_connection_closes_without_a_response(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.add_fault("GET /v1/fine-tunes", "drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/fine-tunes")
    assert api.get("/fine-tunes").status_code == 200
    assert together_emulator.admin.count("GET /v1/fine-tunes") == 2


def test_ambiguous_submit_commits_the_job_but_answers_500(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    together_emulator.admin.add_fault("POST /v1/fine-tunes", "ambiguous", count=1)
    answer = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL, "suffix": "amb"})
    assert answer.status_code == 500
    jobs = api.get("/fine-tunes").json()["data"]
    assert [job["suffix"] for job in jobs] == ["amb"]
    assert together_emulator.admin.count("POST /v1/fine-tunes") == 1
    assert len(together_emulator.admin.jobs()) == 1


def test_requests_are_counted_per_route_template(together_emulator: Emulator, api: httpx.Client) -> None:
    api.get("/fine-tunes/ft-a")
    api.get("/fine-tunes/ft-b")
    api.get("/fine-tunes")
    api.get("/no-such-route")
    counts = together_emulator.admin.requests()
    assert counts["GET /v1/fine-tunes/{job_id}"] == 2
    assert counts["GET /v1/fine-tunes"] == 1
    assert counts["unmatched"] == 1
    together_emulator.admin.reset_counts()
    assert together_emulator.admin.requests() == {}


@pytest.mark.parametrize(("scenario", "status"), [("error", "error"), ("user_error", "user_error")])
def test_failing_scenarios_end_with_together_like_error_events(
    together_emulator: Emulator, api: httpx.Client, scenario: str, status: str
) -> None:
    file_id = ready_file(api)
    together_emulator.admin.add_scenario(scenario, suffix="bad", count=1)
    bad = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL, "suffix": "bad"}).json()
    good = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL, "suffix": "bad"}).json()
    failed = wait_status(api, bad["id"], TERMINAL)
    assert failed["status"] == status
    assert failed["total_price"] == 0
    errors = [e for e in failed["events"] if e["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["type"] == "job_error"
    assert len(errors[0]["message"]) > 30
    assert wait_status(api, good["id"], TERMINAL)["status"] == "completed"  # count=1: only one job affected


def test_custom_error_message_and_default_scenario(together_emulator: Emulator, api: httpx.Client) -> None:
    file_id = ready_file(api)
    together_emulator.admin.set_default_scenario("error", message="Out of GPU memory at step 3")
    job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
    failed = wait_status(api, job["id"], TERMINAL)
    assert failed["events"][-2]["message"] == "Out of GPU memory at step 3"


def test_stall_keeps_running_until_cancelled(together_emulator: Emulator, api: httpx.Client) -> None:
    file_id = ready_file(api)
    together_emulator.admin.add_scenario("stall")
    job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
    time.sleep(1.0)  # at speed 100 a normal job would have completed by now
    stalled = api.get(f"/fine-tunes/{job['id']}").json()
    assert stalled["status"] == "running"
    assert 0 < stalled["steps_completed"] < stalled["total_steps"]
    assert stalled["progress"]["estimate_available"] is False
    api.post(f"/fine-tunes/{job['id']}/cancel")
    assert wait_status(api, job["id"], TERMINAL)["status"] == "cancelled"


def test_unknown_status_appears_then_the_job_completes(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    file_id = ready_file(api)
    together_emulator.admin.add_scenario("unknown_status", status="paused_for_maintenance")
    job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
    assert wait_status(api, job["id"], TERMINAL)["status"] == "completed"
    history = [h["status"] for h in together_emulator.admin.job(job["id"])["history"]]
    assert "paused_for_maintenance" in history
    assert history.index("running") < history.index("paused_for_maintenance") < history.index("compressing")


def test_scenario_of_a_live_job_changes_from_now_on(together_emulator: Emulator, api: httpx.Client) -> None:
    together_emulator.admin.update_settings(speed=2)
    file_id = ready_file(api)
    job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
    seen = api.get(f"/fine-tunes/{job['id']}/events").json()["data"]
    together_emulator.admin.set_job_scenario(job["id"], "error", message="boom")
    together_emulator.admin.update_settings(speed=100)
    failed = wait_status(api, job["id"], TERMINAL)
    assert failed["status"] == "error"
    assert failed["events"][: len(seen)] == seen  # the past is not rewritten


def test_unknown_scenario_or_fault_kind_is_rejected(together_emulator: Emulator) -> None:
    root = f"{together_emulator.root_url}/_emulator"
    assert httpx.post(f"{root}/scenarios", json={"scenario": "explode"}).status_code == 400
    assert httpx.post(f"{root}/faults", json={"kind": "meteor"}).status_code == 400
    assert httpx.post(f"{root}/faults", json={"kind": "status", "rate": 2}).status_code == 400
    assert httpx.patch(f"{root}/settings", json={"api_key": "x"}).status_code == 400


def test_cli_fault_specs_parse() -> None:
    rule = parse_fault_spec("GET /v1/fine-tunes/*=status:429,count=3,retry_after=1")
    assert (rule.route, rule.kind, rule.status, rule.count, rule.retry_after) == (
        "GET /v1/fine-tunes/*",
        FaultKind.STATUS,
        429,
        3,
        1.0,
    )
    assert parse_fault_spec("POST /v1/fine-tunes=ambiguous").kind is FaultKind.AMBIGUOUS
    assert parse_fault_spec("*=latency,latency_ms=50").latency_ms == 50
    with pytest.raises(ValueError, match="unknown fault option"):
        parse_fault_spec("*=drop,often=1")
    with pytest.raises(ValueError, match="teleport"):
        parse_fault_spec("*=teleport")


def test_a_fault_can_target_one_job_by_its_concrete_path(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    together_emulator.admin.add_fault("GET /v1/fine-tunes/ft-sick", "status", status=503, retry_after=2)
    sick = api.get("/fine-tunes/ft-sick")
    assert sick.status_code == 503
    assert sick.headers["Retry-After"] == "2"
    assert api.get("/fine-tunes/ft-healthy").status_code == 404  # reaches the route: unknown job


def test_stall_in_the_queue(together_emulator: Emulator, api: httpx.Client) -> None:
    file_id = ready_file(api)
    together_emulator.admin.set_default_scenario("stall", stage="queued")
    job = api.post("/fine-tunes", json={"training_file": file_id, "model": MODEL}).json()
    time.sleep(0.5)
    queued = api.get(f"/fine-tunes/{job['id']}").json()
    assert queued["status"] == "queued"
    assert queued["queue_depth"] > 0
    assert queued["steps_completed"] == 0


def test_a_body_fault_answers_exactly_what_it_was_given(
    together_emulator: Emulator, api: httpx.Client
) -> None:
    together_emulator.admin.add_fault(
        "GET /v1/fine-tunes", "body", count=1, body="<html>Bad gateway</html>", content_type="text/html"
    )
    together_emulator.admin.add_fault("POST /v1/fine-tunes/estimate-price", "body", status=200, body="{}")
    page = api.get("/fine-tunes")
    assert (page.status_code, page.text) == (200, "<html>Bad gateway</html>")
    assert page.headers["content-type"].startswith("text/html")
    assert api.get("/fine-tunes").json()["data"] == []  # count=1: the next answer is the real one
    assert api.post("/fine-tunes/estimate-price", json={"training_file": "file-x"}).json() == {}
    assert together_emulator.admin.jobs() == []


def test_cli_body_fault_spec_keeps_commas_in_the_body() -> None:
    rule = parse_fault_spec('POST /v1/fine-tunes/estimate-price=body:200,count=2,body={"a": 1, "b": null}')
    assert (rule.kind, rule.status, rule.count) == (FaultKind.BODY, 200, 2)
    assert rule.body == '{"a": 1, "b": null}'
    assert parse_fault_spec("GET /v1/files=body,body=oops").status == 200
