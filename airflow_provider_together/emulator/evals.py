"""
Evaluation jobs: creation checks like the service's, the ``pending -> queued -> running -> completed`` life
(and the error scenarios), and the job object; results come from the emulated judge (:mod:`.eval_judge`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from airflow_provider_together.emulator import eval_judge
from airflow_provider_together.emulator.clock import iso
from airflow_provider_together.emulator.errors import APIError, not_found
from airflow_provider_together.emulator.kinds import Scenario
from airflow_provider_together.models.status import FileProcessingStatus

if TYPE_CHECKING:
    from airflow_provider_together.emulator.clock import Clock
    from airflow_provider_together.emulator.files import FileRecord, FileStore

__all__ = ["EvalRecord", "EvalStore"]

#: Virtual seconds in each stage (a 20-row job takes about a minute, as in Together's own example).
PENDING_S = 2.0
QUEUED_S = 3.0
SECONDS_PER_ROW = 2.0
_TYPES = ("classify", "score", "compare")
_REQUIRED = {
    "classify": ("labels", "pass_labels"),
    "score": ("min_score", "max_score", "pass_threshold"),
    "compare": (),
}
_SOURCES = ("serverless", "dedicated", "external")
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})
DEFAULT_ERROR = (
    "Evaluation failed: the judge model returned no parseable verdicts (internal error). Please retry."
)


@dataclass
class EvalRecord:
    """One evaluation: its request, input rows, scenario and (once completed) its results."""

    id: str
    type: str
    parameters: dict[str, Any]
    created_v: float
    created_wall: float
    rows: list[dict[str, Any]]
    columns: list[str]
    scenario: Scenario = Scenario.COMPLETE
    scenario_params: dict[str, Any] = field(default_factory=dict)
    user_problem: str | None = None
    results: dict[str, Any] | None = None

    @property
    def running_at(self) -> float:
        """When the job starts running (virtual seconds)."""
        return self.created_v + PENDING_S + QUEUED_S

    @property
    def done_at(self) -> float:
        """When it ends, unless its scenario says otherwise."""
        return self.running_at + SECONDS_PER_ROW * max(1, len(self.rows))


def _read_rows(path: str, file_type: str) -> tuple[list[dict[str, Any]], list[str]]:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if file_type == "csv":
        reader = csv.DictReader(io.StringIO(text))
        return [dict(row) for row in reader], list(reader.fieldnames or [])
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return rows, columns


def _template_names(template: Any) -> set[str]:
    from jinja2 import Environment, TemplateSyntaxError, meta

    try:
        return set(meta.find_undeclared_variables(Environment().parse(str(template)))) - _JINJA_GLOBALS
    except TemplateSyntaxError:
        return set()


class EvalStore:
    """
    Evaluations by id, in creation order, plus the quality rules of the emulated judge.

    :param clock: the emulator clock.
    :param files: the file store (input files are read from it; result files are added to it).
    """

    def __init__(self, clock: Clock, files: FileStore) -> None:
        self.clock = clock
        self.files = files
        self.evals: dict[str, EvalRecord] = {}
        self.quality: list[tuple[str, float]] = []

    def reset(self) -> None:
        """Forget every evaluation and quality rule."""
        self.evals.clear()
        self.quality.clear()

    def get(self, eval_id: str) -> EvalRecord:
        """Return an evaluation or the API's 404."""
        record = self.evals.get(eval_id)
        if record is None:
            raise not_found("Evaluation job", eval_id, param="id")
        return record

    def quality_of(self, name: str) -> float:
        """The emulated quality of a model or answer column (the last matching rule wins; default 0.5)."""
        found = 0.5
        for pattern, value in self.quality:
            if fnmatchcase(name, pattern):
                found = value
        return found

    # -- create -------------------------------------------------------------------------------------

    def create(self, body: Any, scenario: Scenario, params: dict[str, Any]) -> EvalRecord:
        """Check a create request like the service does (400 naming the parameter) and register the job."""
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object", param="body")
        kind = body.get("type")
        if kind not in _TYPES:
            raise APIError(400, f"type must be one of {', '.join(_TYPES)}", param="type")
        parameters = body.get("parameters")
        if not isinstance(parameters, dict):
            raise APIError(400, "parameters is required and must be an object", param="parameters")
        judge = parameters.get("judge")
        if not isinstance(judge, dict):
            raise APIError(400, "parameters.judge is required", param="parameters.judge")
        self._check_inference(judge, "parameters.judge", model_config=False)
        for name in _REQUIRED[kind]:
            if parameters.get(name) is None:
                raise APIError(400, f"parameters.{name} is required for {kind}", param=f"parameters.{name}")
        for name in ("model_to_evaluate", "model_a", "model_b"):
            part = parameters.get(name)
            if isinstance(part, dict):
                self._check_inference(part, f"parameters.{name}", model_config=True)
            elif part is not None and not isinstance(part, str):
                raise APIError(
                    400, f"parameters.{name} must be a string or an object", param=f"parameters.{name}"
                )
        file_id = parameters.get("input_data_file_path")
        if not isinstance(file_id, str) or not file_id:
            raise APIError(
                400, "parameters.input_data_file_path is required", param="parameters.input_data_file_path"
            )
        record_file = self.files.files.get(file_id)
        if record_file is None or not record_file.uploaded:
            raise APIError(
                400,
                f"Input file {file_id} not found",
                param="parameters.input_data_file_path",
                code="not_found",
            )
        if record_file.file_type not in ("jsonl", "csv"):
            raise APIError(
                400, "The input file must be JSONL or CSV", param="parameters.input_data_file_path"
            )
        try:
            rows, columns = _read_rows(str(self.files.path(record_file)), record_file.file_type)
        except (ValueError, UnicodeDecodeError):
            rows, columns = [], []
        now_v = self.clock.now()
        record = EvalRecord(
            id=f"eval-{uuid.uuid4().hex[:4]}-{int(time.time())}",
            type=kind,
            parameters=json.loads(json.dumps(parameters)),
            created_v=now_v,
            created_wall=time.time(),
            rows=rows,
            columns=columns,
            scenario=scenario,
            scenario_params=params,
            user_problem=self._user_problem(parameters, rows, columns),
        )
        self.evals[record.id] = record
        return record

    @staticmethod
    def _check_inference(part: dict[str, Any], where: str, *, model_config: bool) -> None:
        required = ["model", "model_source", "system_template"]
        if model_config:
            required += ["input_template", "max_tokens", "temperature"]
        for key in required:
            if part.get(key) in (None, ""):
                raise APIError(400, f"{where}.{key} is required", param=f"{where}.{key}")
        if part["model_source"] not in _SOURCES:
            raise APIError(
                400,
                f"{where}.model_source must be one of {', '.join(_SOURCES)}",
                param=f"{where}.model_source",
            )
        if part["model_source"] == "external" and not (
            part.get("external_api_token") and part.get("external_base_url")
        ):
            raise APIError(
                400, f"{where}: external models need external_api_token and external_base_url", param=where
            )

    @staticmethod
    def _user_problem(
        parameters: dict[str, Any], rows: list[dict[str, Any]], columns: list[str]
    ) -> str | None:
        """What the service reports with ``user_error`` once it reads the dataset (None when it is fine)."""
        if not rows:
            return "The input file holds no readable rows (JSONL objects or CSV rows with a header)."
        used: set[str] = set()
        parts = [parameters.get(n) for n in ("judge", "model_to_evaluate", "model_a", "model_b")]
        for part in parts:
            if isinstance(part, dict):
                used |= _template_names(part.get("system_template", "")) | _template_names(
                    part.get("input_template", "")
                )
            elif isinstance(part, str):
                if part not in columns:
                    return f"Column '{part}' named as a response column is not in the dataset."
                used.add(part)
        unused = [c for c in columns if c not in used and c != "image_data_urls"]
        if unused:
            return (
                f"Dataset validation failed: column(s) {', '.join(unused)} are not used by any template or as a "
                "response column. Every column must be used."
            )
        return None

    # -- life ---------------------------------------------------------------------------------------

    def status(self, record: EvalRecord, now_v: float | None = None) -> str:
        """The status at virtual time ``now_v`` (now by default)."""
        now_v = self.clock.now() if now_v is None else now_v
        if now_v < record.created_v + PENDING_S:
            return "pending"
        if now_v < record.running_at:
            return "queued"
        if record.user_problem is not None or record.scenario is Scenario.USER_ERROR:
            return "user_error"
        if record.scenario is Scenario.STALL:
            return "running"
        if record.scenario is Scenario.ERROR:
            at = float(record.scenario_params.get("at", 0.5))
            return (
                "error"
                if now_v >= record.running_at + at * (record.done_at - record.running_at)
                else "running"
            )
        if now_v < record.done_at:
            if record.scenario is Scenario.UNKNOWN_STATUS:
                return str(record.scenario_params.get("status", "rebalancing"))
            return "running"
        return "completed"

    def history(self, record: EvalRecord) -> list[dict[str, Any]]:
        """``status_updates``: every status reached so far, with when and why."""
        now_v = self.clock.now()
        points = [record.created_v, record.created_v + PENDING_S, record.running_at]
        if record.scenario is Scenario.ERROR:
            at = float(record.scenario_params.get("at", 0.5))
            points.append(record.running_at + at * (record.done_at - record.running_at))
        elif record.scenario is Scenario.UNKNOWN_STATUS:
            points.append(record.running_at + 1e-6)
        points.append(record.done_at)
        updates: list[dict[str, Any]] = []
        for v in points:
            if v > now_v:
                break
            status = self.status(record, v)
            if updates and updates[-1]["status"] == status:
                continue
            message = self._message(record, status)
            updates.append({"status": status, "message": message, "timestamp": iso(self.clock.wall_of(v))})
        return updates

    def _message(self, record: EvalRecord, status: str) -> str:
        if status == "user_error":
            return str(
                record.scenario_params.get("message") or record.user_problem or "Invalid evaluation input"
            )
        if status == "error":
            return str(record.scenario_params.get("message") or DEFAULT_ERROR)
        return {
            "pending": "Job is pending evaluation",
            "queued": "Job is queued",
            "running": "Job is running",
            "completed": "Job completed",
        }.get(status, f"Job is {status}")

    def to_json(self, record: EvalRecord) -> dict[str, Any]:
        """The ``EvaluationJob`` object at the current virtual time."""
        status = self.status(record)
        results: dict[str, Any] | None = None
        if status == "completed":
            results = self.results(record)
        elif status in ("error", "user_error"):
            results = {"error": self._message(record, status)}
        updates = self.history(record)
        return {
            "workflow_id": record.id,
            "type": record.type,
            "owner_id": "emulator_7e3a",
            "status": status,
            "status_updates": updates,
            "parameters": _redacted(record.parameters),
            "created_at": iso(record.created_wall),
            "updated_at": updates[-1]["timestamp"] if updates else iso(record.created_wall),
            "results": results,
        }

    # -- results ------------------------------------------------------------------------------------

    def results(self, record: EvalRecord) -> dict[str, Any]:
        """The results object (computed once, with its result file, when the job is first seen completed)."""
        if record.results is None:
            rows = eval_judge.verdicts(record.type, record.parameters, record.rows, self.quality_of)
            record.results = eval_judge.summarise(record.type, record.parameters, rows)
            record.results["result_file_id"] = self._result_file(record, rows).id
        return record.results

    def _result_file(self, record: EvalRecord, verdicts: list[dict[str, Any]]) -> FileRecord:
        from airflow_provider_together.emulator.files import FileRecord

        data = "".join(json.dumps(v) + "\n" for v in verdicts).encode()
        file = FileRecord(
            id=f"file-{uuid.uuid4()}",
            filename=f"{record.id}-results.jsonl",
            purpose="eval-output",
            file_type="jsonl",
            checksum=hashlib.sha256(data).hexdigest(),
            created_at=int(time.time()),
            token=secrets.token_urlsafe(16),
            bytes=len(data),
            uploaded=True,
            processing_requested=True,
            ready_v=self.clock.now(),
            check={"valid": True, "file_id": None, "nlines": len(verdicts), "dataset_format": "eval-output"},
        )
        self.files.path(file).write_bytes(data)
        self.files.files[file.id] = file
        assert file.status(self.clock.now()) is FileProcessingStatus.COMPLETED
        return file


def _redacted(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters echo, without external tokens (the service never sends a secret back)."""
    echo: dict[str, Any] = json.loads(json.dumps(parameters))
    for part in echo.values():
        if isinstance(part, dict) and "external_api_token" in part:
            part["external_api_token"] = "***"
    return echo
