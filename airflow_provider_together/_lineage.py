"""
What a finished Together task tells lineage: which files went in (where they came from, and their Together
file ids), which model came out, the config fingerprint, and an evaluation's figures.

No OpenLineage import here: :func:`fine_tune_facts` also feeds the outlet asset metadata, which must work
without ``apache-airflow-providers-openlineage``. The OpenLineage objects are built in
:mod:`airflow_provider_together._openlineage`, imported only by ``get_openlineage_facets_on_complete``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_provider_together.models import FineTuneJob

__all__ = ["FileFacts", "FineTuneFacts", "dataset_name", "file_facts", "fine_tune_facts", "is_file_id"]

#: OpenLineage namespace of Together's own objects (uploaded files, fine-tuned models).
TOGETHER_NAMESPACE = "together"


@dataclass(frozen=True)
class FileFacts:
    """One input file: where it came from (``None`` when given as a file id) and its Together file id."""

    field: str
    source: tuple[str, str] | None
    file_id: str | None


@dataclass(frozen=True)
class FineTuneFacts:
    """What lineage and the asset metadata say about a finished fine-tune."""

    job_id: str
    base_model: str | None
    output_model: str | None
    config_fingerprint: str | None
    files: list[FileFacts] = field(default_factory=list)

    def asset_metadata(self) -> dict[str, Any]:
        """The keys added to the outlet asset events' ``extra`` (JSON-able, no path, no secret)."""
        meta: dict[str, Any] = {"base_model": self.base_model, "config_fingerprint": self.config_fingerprint}
        for item in self.files:
            meta[f"{item.field}_id"] = item.file_id
        return meta


def is_file_id(value: Any) -> bool:
    """Whether a file argument is a Together file id rather than a path or URI."""
    from airflow_provider_together._fine_tune.inputs import FILE_ID_PATTERN

    return isinstance(value, str) and FILE_ID_PATTERN.match(value) is not None


def dataset_name(value: Any) -> tuple[str, str] | None:
    """
    Name a local path or an object-storage URI the OpenLineage way: ``(namespace, name)``.

    ``s3://bucket/key`` is ``("s3://bucket", "key")``; a local path is ``("file", "/absolute/path")``.
    """
    if value is None or value == "" or is_file_id(value):
        return None
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:  # "C:" is a drive, not a scheme
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    path = parts.path if parts.scheme == "file" else text
    return "file", os.path.abspath(path)


def _argument(op: Any, name: str) -> Any:
    """The file argument as given to the operator, else the one inside ``config=``."""
    value = getattr(op, name, None)
    if value is not None:
        return value
    config = getattr(op, "config", None)
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def file_facts(name: str, argument: Any, file_id: str | None) -> FileFacts | None:
    """Facts of one input file, or ``None`` when the task had none."""
    if argument in (None, "") and not file_id:  # the API sends "" for an absent validation file
        return None
    file_id = file_id or None
    if file_id is None and is_file_id(argument):
        file_id = str(argument)
    return FileFacts(name, dataset_name(argument), file_id)


def _fingerprint(op: Any, job: FineTuneJob) -> str | None:
    from pydantic import ValidationError

    from airflow_provider_together._fine_tune.prepare import build_config
    from airflow_provider_together.exceptions import TogetherConfigError

    try:
        config = build_config(op)
    except (TogetherConfigError, ValidationError):
        return None
    # The operator fingerprints the config whose files are already Together ids (see prepare._submit).
    ids = {"training_file": job.training_file, "validation_file": job.validation_file}
    return config.model_copy(update={k: v for k, v in ids.items() if v}).fingerprint()


def fine_tune_facts(op: Any, job: FineTuneJob) -> FineTuneFacts:
    """Gather the facts of a finished fine-tune from the operator's rendered arguments and the job."""
    files = [
        file_facts(name, _argument(op, name), getattr(job, name))
        for name in ("training_file", "validation_file")
    ]
    return FineTuneFacts(
        job_id=job.id,
        base_model=job.model,
        output_model=job.model_output_name,
        config_fingerprint=_fingerprint(op, job),
        files=[item for item in files if item is not None],
    )
