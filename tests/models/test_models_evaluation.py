"""EvaluationConfig (every rule named by field), the column rule, tolerant results read by type, statuses."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_together.exceptions import TogetherConfigError
from airflow_provider_together.models import (
    EvaluationConfig,
    EvaluationJob,
    EvaluationStatus,
    Outcome,
    classify,
)
from airflow_provider_together.models.evaluation_config import column_problems, template_columns

JUDGE = {"model": "judge", "model_source": "serverless", "system_template": "Rate the answer to {{prompt}}."}
MODEL = {
    "model": "my/model",
    "model_source": "serverless",
    "system_template": "You help.",
    "input_template": "{{prompt}}",
    "max_tokens": 100,
    "temperature": 0.3,
}


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TogetherConfigError) as info:
        EvaluationConfig.parse(data)
    assert str(info.value).startswith("Invalid evaluation config")
    return info.value.problems


def fields(data: dict[str, Any]) -> list[str]:
    return [field for field, _ in problems(data)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "classify", "judge": JUDGE}, ["labels", "pass_labels"]),
        ({"type": "score", "judge": JUDGE}, ["min_score", "max_score", "pass_threshold"]),
        ({"type": "compare", "judge": JUDGE}, ["model_a", "model_b"]),
        ({"type": "rank", "judge": JUDGE}, ["type"]),
        ({"type": "classify"}, ["judge"]),
    ],
)
def test_required_fields_per_type(data, expected) -> None:
    assert fields(data) == expected


def test_fields_of_another_type_are_named() -> None:
    found = problems(
        {
            "type": "compare",
            "judge": JUDGE,
            "model_a": "a",
            "model_b": "b",
            "labels": ["x", "y"],
            "min_score": 1,
        }
    )
    assert ("labels", "applies to classify evaluations only, not compare") in found
    assert ("min_score", "applies to score evaluations only, not compare") in found


def test_label_rules() -> None:
    found = dict(problems({"type": "classify", "judge": JUDGE, "labels": ["ok"], "pass_labels": ["great"]}))
    assert found["labels"] == "needs at least 2 labels"
    assert "['great'] are not among labels" in found["pass_labels"]
    found = dict(problems({"type": "classify", "judge": JUDGE, "labels": ["a", "a"], "pass_labels": ["a"]}))
    assert found["labels"] == "must not repeat a label"
    found = dict(
        problems({"type": "classify", "judge": JUDGE, "labels": ["a", "b"], "pass_labels": ["a", "b"]})
    )
    assert "every label passes" in found["pass_labels"]


@pytest.mark.parametrize(
    ("scores", "field", "rule"),
    [
        ((5, 5, 5), "max_score", "must be greater than min_score"),
        ((0, 10, 11), "pass_threshold", "must lie between min_score and max_score"),
        ((0, 10, -1), "pass_threshold", "must lie between"),
    ],
)
def test_score_range_rules(scores, field, rule) -> None:
    low, high, threshold = scores
    data = {"type": "score", "judge": JUDGE, "min_score": low, "max_score": high, "pass_threshold": threshold}
    [(found_field, message)] = problems(data)
    assert found_field == field
    assert rule in message


def test_judge_and_model_config_problems_are_named_by_path() -> None:
    bad_model = {**MODEL, "max_tokens": 0, "temperature": 3}
    del bad_model["input_template"]
    found = fields(
        {
            "type": "compare",
            "judge": {"model": "j", "model_source": "cloud"},
            "model_a": bad_model,
            "model_b": 7,
            "typo_field": 1,
        }
    )
    assert found == [
        "judge.model_source",
        "judge.system_template",
        "model_a.input_template",
        "model_a.max_tokens",
        "model_a.temperature",
        "model_b",
        "typo_field",
    ]


def test_unknown_option_gets_a_spelling_hint() -> None:
    found = dict(
        problems({"type": "score", "judge": JUDGE, "min_score": 0, "max_score": 1, "pass_treshold": 1})
    )
    assert found["pass_treshold"] == "unknown option; did you mean 'pass_threshold'?"


def test_external_source_needs_a_base_url_and_a_token() -> None:
    judge = {**JUDGE, "model_source": "external"}
    assert fields({"type": "compare", "judge": judge, "model_a": "a", "model_b": "b"}) == [
        "judge.external_base_url"
    ]
    config = EvaluationConfig.parse(
        {
            "type": "compare",
            "judge": {**judge, "external_base_url": "https://x/v1"},
            "model_a": "a",
            "model_b": "b",
        }
    )
    assert config.secret_problems() == [
        ("judge.external_api_token", "is required when model_source is 'external'")
    ]


def test_request_body_is_the_sdk_shape_without_nulls_and_keeps_the_token() -> None:
    judge = {
        **JUDGE,
        "model_source": "external",
        "external_base_url": "https://x/v1",
        "external_api_token": "sk-1",
    }
    config = EvaluationConfig.parse(
        {
            "type": "score",
            "judge": judge,
            "min_score": 1,
            "max_score": 10,
            "pass_threshold": 7,
            "model_to_evaluate": MODEL,
        },
        input_data_file_path="file-abc123",
    )
    assert "sk-1" not in repr(config)
    assert config.to_request() == {
        "type": "score",
        "parameters": {
            "judge": judge,
            "input_data_file_path": "file-abc123",
            "model_to_evaluate": MODEL,
            "min_score": 1.0,
            "max_score": 10.0,
            "pass_threshold": 7.0,
        },
    }
    # Re-parsing a config (the operator lays the file id over it) keeps the secret's real value.
    again = EvaluationConfig.parse(config, input_data_file_path="file-other1")
    assert again.to_request()["parameters"]["judge"]["external_api_token"] == "sk-1"


def test_request_needs_the_input_file_id() -> None:
    config = EvaluationConfig.parse({"type": "compare", "judge": JUDGE, "model_a": "a", "model_b": "b"})
    with pytest.raises(TogetherConfigError, match="input_data_file_path"):
        config.to_request()


def test_template_columns_reads_top_level_names_of_expressions_and_blocks() -> None:
    template = "{% if metadata.topic %}{{ metadata.topic }}{% endif %}{% for x in range(2) %}{{ prompt }}{% endfor %}"
    assert template_columns(template) == {"metadata", "prompt"}
    with pytest.raises(ValueError, match="not a valid Jinja2 template"):
        template_columns("{{ prompt ")


def test_every_column_must_be_used_and_every_name_must_exist() -> None:
    config = EvaluationConfig.parse(
        {
            "type": "compare",
            "judge": JUDGE,
            "model_a": "response_a",
            "model_b": {**MODEL, "input_template": "{{ question }}"},
        }
    )
    found = column_problems(config, ["prompt", "response_a", "id", "image_data_urls"])
    assert [field for field, _ in found] == ["model_b.input_template", "input_file"]
    assert "{{ question }}" in found[0][1]
    assert "'id'" in found[1][1]
    assert "user_error" in found[1][1]
    found = column_problems(config, ["prompt", "question"])
    assert found == [
        ("model_a", "names column 'response_a', which the input file does not have ['prompt', 'question']")
    ]
    assert column_problems(config, ["prompt", "question", "response_a"]) == []


def test_status_table_and_unknown_status(caplog) -> None:
    table = {status: classify(status) for status in EvaluationStatus}
    assert table == {
        EvaluationStatus.PENDING: Outcome.RUNNING,
        EvaluationStatus.QUEUED: Outcome.RUNNING,
        EvaluationStatus.RUNNING: Outcome.RUNNING,
        EvaluationStatus.COMPLETED: Outcome.SUCCEEDED,
        EvaluationStatus.ERROR: Outcome.FAILED,
        EvaluationStatus.USER_ERROR: Outcome.FAILED,
        EvaluationStatus.UNKNOWN: Outcome.RUNNING,
    }
    job = EvaluationJob.model_validate({"workflow_id": "eval-1", "status": "Rebalancing"})
    assert classify(job) is Outcome.RUNNING
    assert "Unknown evaluation status 'Rebalancing'" in caplog.text


@pytest.mark.parametrize(
    ("kind", "results", "expected"),
    [
        # The shapes the v3 SDK misreads: an object label_counts (parsed there as score results) ...
        (
            "classify",
            {"label_counts": {"a": 2, "b": 6}, "pass_percentage": 25.0},
            {"label_counts": {"a": 2, "b": 6}, "pass_percentage": 25.0},
        ),
        # ... and the spec's JSON-string label_counts.
        (
            "classify",
            {"label_counts": '{"a": 1}', "pass_percentage": "100"},
            {"label_counts": {"a": 1}, "pass_percentage": 100.0},
        ),
        (
            "score",
            {"aggregated_scores": {"mean_score": 6.5, "std_score": 1.5, "pass_percentage": 40}},
            {"mean_score": 6.5, "std_score": 1.5, "pass_percentage": 40.0},
        ),
        (
            "compare",
            {"A_wins": 6, "B_wins": 2, "Ties": 4, "judge_fail_count": 1},
            {"a_wins": 6, "b_wins": 2, "ties": 4, "win_rate": 0.75, "judge_fail_count": 1.0},
        ),
        ("compare", {"A_wins": 0, "B_wins": 0, "Ties": 3}, {"win_rate": None, "ties": 3}),
    ],
)
def test_results_are_read_for_the_jobs_type(kind, results, expected) -> None:
    job = EvaluationJob.model_validate(
        {"workflow_id": "eval-1", "type": kind, "status": "completed", "results": results}
    )
    summary = job.summary()
    for key, value in expected.items():
        assert summary[key] == value, key


def test_error_results_become_the_message_not_figures() -> None:
    # {"error": ...} parses as classify results in the v3 SDK; here it is the failure's explanation.
    job = EvaluationJob.model_validate(
        {
            "workflow_id": "eval-1",
            "type": "classify",
            "status": "user_error",
            "results": {"error": "column id unused"},
        }
    )
    assert job.typed_results() is None
    assert job.error_message == "column id unused"
    assert job.summary()["pass_percentage"] is None


def test_unreadable_fields_do_not_break_a_poll() -> None:
    job = EvaluationJob.model_validate(
        {
            "workflow_id": "eval-1",
            "type": "compare",
            "status": "running",
            "results": "soon",
            "status_updates": "x",
            "new": 1,
        }
    )
    assert (job.results, job.status_updates, job.status) == (None, [], EvaluationStatus.RUNNING)
