"""Test doubles and helpers shared by the operator, trigger and sensor tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
#: Emulator speed (virtual seconds per wall second) at which a small job completes in about a second.
FAST = 3000.0


def write_training_file(path: Path, n: int = 24) -> Path:
    """Write a small valid conversational JSONL file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            sample = {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
                ]
            }
            fh.write(json.dumps(sample) + "\n")
    return path


class FakeTI:
    """The slice of Airflow's RuntimeTaskInstance the operators use: identity and XCom push/pull."""

    def __init__(
        self, *, dag_id: str = "dag", run_id: str = "run-1", task_id: str = "fine_tune", try_number: int = 1
    ):
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.map_index = -1
        self.try_number = try_number
        self.start_date = None
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(key)

    def get_first_reschedule_date(self, context: Any) -> None:
        """A first try has no earlier reschedule (used by sensors in reschedule mode)."""
        return None


class MemoryStateStore:
    """Stands in for Airflow 3.3's ``task_state_store`` accessor (same get/set signature)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.data[key] = json.loads(json.dumps(value))


def make_operator(tmp_path: Path, *, deferrable: bool, **kwargs: Any) -> Any:
    """A fine-tune operator on a fresh valid training file, polling fast; ``kwargs`` override."""
    from airflow_provider_together.operators import TogetherFineTuneOperator

    options: dict[str, Any] = {
        "task_id": "fine_tune",
        "training_file": str(write_training_file(tmp_path / "train.jsonl")),
        "model": BASE_MODEL,
        "deferrable": deferrable,
        "poll_interval": 0.05,
    }
    options.update(kwargs)
    return TogetherFineTuneOperator(**options)


def make_context(ti: FakeTI | None = None, store: MemoryStateStore | None = None) -> dict[str, Any]:
    """A task context; without ``store`` it looks like Airflow 3.1 / 3.2 (no task state store)."""
    context: dict[str, Any] = {"ti": ti or FakeTI()}
    if store is not None:
        context["task_state_store"] = store
    return context


def create_job(tmp_path: Path, **request: Any) -> str:
    """Upload a training file and create a job through the (sync) hook; return the job id."""
    from airflow_provider_together.hooks import TogetherHook

    hook = TogetherHook()
    file_id = hook.upload_file(write_training_file(tmp_path / "train.jsonl")).id
    hook.wait_for_file_ready(file_id, timeout=30, poll_interval=0.05)
    return hook.create_fine_tune({"training_file": file_id, "model": BASE_MODEL, **request}).id


class LogText:
    """
    Everything logged so far: stdlib records (caplog) and Airflow's structlog output (stdout/stderr).

    Airflow 3 renders ``self.log`` of operators and triggers through structlog straight to the process'
    output, which caplog does not see, so both are read.
    """

    def __init__(self, caplog: Any, capfd: Any) -> None:
        self._caplog = caplog
        self._capfd = capfd
        self._seen = ""

    @property
    def text(self) -> str:
        out, err = self._capfd.readouterr()
        self._seen += out + err
        return self._caplog.text + self._seen

    def lines(self, prefix: str) -> list[str]:
        """Logged lines containing ``prefix``, each reduced to the text from ``prefix`` on (no timestamp)."""
        found = []
        for line in self.text.splitlines():
            at = line.find(prefix)
            if at >= 0:
                found.append(line[at:].split(" [airflow", 1)[0].strip())
        return found


def memory_xcom_backend() -> type:
    """
    An XCom backend keeping values in this process (for ``[core] xcom_backend`` in a child interpreter).

    Lets a test run the trigger's XCom cursor mirror without a triggerer: Airflow resolves ``XCom`` from
    the configured backend class, the documented extension point.
    """
    from airflow.sdk.bases.xcom import BaseXCom

    store: dict[tuple[Any, ...], Any] = {}

    class MemoryXCom(BaseXCom):
        values = store

        @classmethod
        async def aset(
            cls,
            key: str,
            value: Any,
            *,
            dag_id: str,
            task_id: str,
            run_id: str,
            map_index: int = -1,
            **_: Any,
        ) -> None:
            store[(dag_id, run_id, task_id, map_index, key)] = json.loads(json.dumps(value))

        @classmethod
        async def aget_one(  # type: ignore[override]
            cls, *, key: str, dag_id: str, task_id: str, run_id: str, map_index: int | None = None, **_: Any
        ) -> Any:
            return store.get((dag_id, run_id, task_id, -1 if map_index is None else map_index, key))

    return MemoryXCom


def __getattr__(name: str) -> Any:
    # Built on first use (``[core] xcom_backend = _fine_tune_support.MemoryXCom`` in a child interpreter), so
    # importing this module never depends on Airflow's XCom internals.
    if name == "MemoryXCom":
        return memory_xcom_backend()
    raise AttributeError(name)
