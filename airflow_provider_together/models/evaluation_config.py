"""
``EvaluationConfig``: an evaluation's ``{type, parameters}``, validated before any HTTP call.

The fields are the v3 SDK's ``client.evals.create(type=, parameters=)`` names (reference, section 2.2). Type
errors come from pydantic, the cross-field rules from :meth:`EvaluationConfig._rules`; both end as one
:class:`~airflow_provider_together.exceptions.TogetherConfigError` naming every field. The rule Together
enforces only late, with ``user_error`` (every dataset column must be used by a template or named as a
response column), is :func:`column_problems`, checked against the input file's columns.

.. seealso:: https://docs.together.ai/reference/create-evaluation-job
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    model_validator,
)

__all__ = [
    "EvaluationConfig",
    "EvaluationModelConfig",
    "JudgeConfig",
    "column_problems",
    "template_columns",
]

Problem = tuple[str, str]
ModelSource = Literal["serverless", "dedicated", "external"]
#: Names a Jinja2 template may use that are not dataset columns.
_JINJA_GLOBALS = frozenset(
    {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "true", "false"}
)
#: A column Together reads without any template naming it (images of a multimodal row).
IMAGE_COLUMN = "image_data_urls"
_MODEL_FIELDS = ("model_to_evaluate", "model_a", "model_b")
_ONLY = {
    "labels": "classify",
    "pass_labels": "classify",
    "min_score": "score",
    "max_score": "score",
    "pass_threshold": "score",
    "model_to_evaluate": "classify or score",
    "model_a": "compare",
    "model_b": "compare",
    "disable_position_bias_correction": "compare",
}
_ALLOWED = {
    "classify": {"labels", "pass_labels", "model_to_evaluate"},
    "score": {"min_score", "max_score", "pass_threshold", "model_to_evaluate"},
    "compare": {"model_a", "model_b", "disable_position_bias_correction"},
}
_REQUIRED = {
    "classify": ("labels", "pass_labels"),
    "score": ("min_score", "max_score", "pass_threshold"),
    "compare": ("model_a", "model_b"),
}


class _Strict(BaseModel):
    """Our input: a typo fails (``extra="forbid"``), blanks are not silently accepted."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), str_strip_whitespace=True)


class _Inference(_Strict):
    """What the judge and a model to evaluate share."""

    model: str = Field(min_length=1, description="Model name; for ``dedicated``, the endpoint id.")
    model_source: ModelSource = Field(description="Where the model runs: serverless, dedicated or external.")
    system_template: str = Field(
        min_length=1, description="System prompt, a Jinja2 template over the columns."
    )
    external_api_token: SecretStr | None = Field(
        default=None, description="Token of an external API (operators take it from a connection)."
    )
    external_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL (external).")
    num_workers: int | None = Field(default=None, ge=1, description="Concurrent inference requests.")


class JudgeConfig(_Inference):
    """The LLM judge (``parameters.judge``)."""

    max_tokens: int | None = Field(default=None, ge=1, description="Judge output limit (Together: 32768).")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Judge temperature (Together: 0.05)."
    )


class EvaluationModelConfig(_Inference):
    """A model Together runs on every row (``model_to_evaluate`` / ``model_a`` / ``model_b`` as an object)."""

    input_template: str = Field(min_length=1, description="User message, a Jinja2 template over the columns.")
    max_tokens: int = Field(ge=1, description="Generation limit per row.")
    temperature: float = Field(ge=0, le=2, description="Sampling temperature.")


def _column_or_model(value: Any) -> str:
    return "column" if isinstance(value, str) else "model"


#: A model to evaluate: a column of pre-generated answers, or a model Together runs (errors name one, not both).
ModelOrColumn = Annotated[
    Annotated[str, Tag("column")] | Annotated[EvaluationModelConfig, Tag("model")],
    Discriminator(_column_or_model),
]


class EvaluationConfig(_Strict):
    """
    One evaluation, as ``POST /evaluation`` takes it: ``type`` plus the type's parameters, flat.

    A model to evaluate is either a **column name** (pre-generated answers in the input file) or an
    :class:`EvaluationModelConfig` (Together generates the answers). ``input_data_file_path`` is the uploaded
    file's id; the operator fills it from ``input_file``.
    """

    type: Literal["classify", "score", "compare"] = Field(description="classify, score or compare.")
    judge: JudgeConfig = Field(description="The LLM judge.")
    input_data_file_path: str | None = Field(default=None, description="The input file's id (file-...).")
    model_to_evaluate: ModelOrColumn | None = Field(default=None, description="classify / score: the model.")
    model_a: ModelOrColumn | None = Field(default=None, description="compare: model A (e.g. the new one).")
    model_b: ModelOrColumn | None = Field(default=None, description="compare: model B (e.g. production).")
    labels: list[str] | None = Field(default=None, description="classify: every label the judge may give.")
    pass_labels: list[str] | None = Field(default=None, description="classify: the labels that pass.")
    min_score: float | None = Field(default=None, description="score: lowest score.")
    max_score: float | None = Field(default=None, description="score: highest score.")
    pass_threshold: float | None = Field(default=None, description="score: a row passes at or above this.")
    disable_position_bias_correction: bool | None = Field(
        default=None, description="compare: judge once per row instead of twice (cheaper, position-biased)."
    )

    @classmethod
    def parse(cls, data: EvaluationConfig | dict[str, Any], **overrides: Any) -> EvaluationConfig:
        """
        Validate ``data`` (a dict in the SDK's shape, or a config) with ``overrides`` on top.

        :raises TogetherConfigError: every problem found, each naming its field.
        """
        raw = data.model_dump(exclude_none=True) if isinstance(data, EvaluationConfig) else dict(data or {})
        if isinstance(data, EvaluationConfig):
            # model_dump masks secrets; keep the real values.
            for name in ("judge", *_MODEL_FIELDS):
                part = getattr(data, name)
                if isinstance(part, _Inference) and part.external_api_token is not None:
                    raw[name]["external_api_token"] = part.external_api_token.get_secret_value()
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            _raise(_pydantic_problems(exc))

    @model_validator(mode="after")
    def _check_rules(self) -> EvaluationConfig:
        problems = self._rules()
        if problems:
            _raise(problems)
        return self

    def _rules(self) -> list[Problem]:
        problems: list[Problem] = []
        given = {name for name in _ONLY if getattr(self, name) is not None}
        for name in sorted(given - _ALLOWED[self.type]):
            problems.append((name, f"applies to {_ONLY[name]} evaluations only, not {self.type}"))
        for name in _REQUIRED[self.type]:
            if getattr(self, name) is None:
                problems.append((name, f"is required for a {self.type} evaluation"))
        if self.type == "classify":
            problems += self._label_problems()
        low, high, threshold = self.min_score, self.max_score, self.pass_threshold
        if self.type == "score" and low is not None and high is not None and threshold is not None:
            if low >= high:
                problems.append(("max_score", f"must be greater than min_score ({low:g})"))
            elif not low <= threshold <= high:
                problems.append(
                    ("pass_threshold", f"must lie between min_score and max_score ({low:g}..{high:g})")
                )
        if self.input_data_file_path is not None and not self.input_data_file_path:
            problems.append(("input_data_file_path", "must not be empty"))
        for name, part in self._inference_parts():
            if isinstance(part, str) and not part:
                problems.append((name, "must name a column (non-empty) or be a model config"))
            if (
                isinstance(part, _Inference)
                and part.model_source == "external"
                and not part.external_base_url
            ):
                problems.append((f"{name}.external_base_url", "is required when model_source is 'external'"))
        return problems

    def _label_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        labels, passing = self.labels or [], self.pass_labels or []
        if self.labels is not None:
            if len(labels) < 2:
                problems.append(("labels", "needs at least 2 labels"))
            if any(not label for label in labels):
                problems.append(("labels", "must not contain empty labels"))
            if len(set(labels)) != len(labels):
                problems.append(("labels", "must not repeat a label"))
        if self.pass_labels is not None:
            if not passing:
                problems.append(("pass_labels", "needs at least 1 label"))
            unknown = [label for label in passing if label not in labels]
            if unknown and self.labels is not None:
                problems.append(("pass_labels", f"{unknown} are not among labels {labels}"))
            if labels and passing and set(passing) >= set(labels):
                problems.append(("pass_labels", "every label passes: leave at least one failing label"))
        return problems

    def _inference_parts(self) -> list[tuple[str, Any]]:
        parts: list[tuple[str, Any]] = [("judge", self.judge)]
        parts += [(name, getattr(self, name)) for name in _MODEL_FIELDS if getattr(self, name) is not None]
        return parts

    def response_columns(self) -> dict[str, str]:
        """The models given as column names: ``{"model_a": "response_a", ...}``."""
        return {name: part for name, part in self._inference_parts() if isinstance(part, str)}

    def templates(self) -> dict[str, str]:
        """Every Jinja2 template, by field path (``judge.system_template``, ``model_a.input_template`` ...)."""
        found: dict[str, str] = {}
        for name, part in self._inference_parts():
            if isinstance(part, _Inference):
                found[f"{name}.system_template"] = part.system_template
            if isinstance(part, EvaluationModelConfig):
                found[f"{name}.input_template"] = part.input_template
        return found

    def secret_problems(self) -> list[Problem]:
        """External sources without a token: found only once the operator filled tokens in from connections."""
        return [
            (f"{name}.external_api_token", "is required when model_source is 'external'")
            for name, part in self._inference_parts()
            if isinstance(part, _Inference)
            and part.model_source == "external"
            and part.external_api_token is None
        ]

    def to_request(self) -> dict[str, Any]:
        """
        The ``POST /evaluation`` body: ``{"type", "parameters"}``, as the v3 SDK sends it (no nulls).

        :raises TogetherConfigError: no input file id yet, or an external source without its token.
        """
        problems = self.secret_problems()
        if not self.input_data_file_path:
            problems.insert(0, ("input_data_file_path", "is required (the uploaded input file's id)"))
        if problems:
            _raise(problems)
        parameters = self.model_dump(mode="json", exclude_none=True, exclude={"type"})
        for name, part in self._inference_parts():
            if isinstance(part, _Inference) and part.external_api_token is not None:
                parameters[name]["external_api_token"] = part.external_api_token.get_secret_value()
        return {"type": self.type, "parameters": parameters}


def template_columns(template: str) -> set[str]:
    """
    The dataset columns a Jinja2 template reads (top-level names: ``{{ metadata.topic }}`` reads ``metadata``).

    :raises ValueError: the template is not valid Jinja2 (the message says where).
    """
    # Imported here: only a config that is being checked against a file needs Jinja2's parser.
    from jinja2 import Environment, TemplateSyntaxError, meta

    try:
        parsed = Environment(autoescape=False).parse(template)  # parsed only, never rendered
    except TemplateSyntaxError as exc:
        raise ValueError(f"is not a valid Jinja2 template (line {exc.lineno}: {exc.message})") from None
    return set(meta.find_undeclared_variables(parsed)) - _JINJA_GLOBALS


def column_problems(
    config: EvaluationConfig, columns: list[str], *, field: str = "input_file"
) -> list[Problem]:
    """
    Check the input file's columns against the config, as Together does late (with ``user_error``).

    Every column must appear in a template, be named as a response column, or be ``image_data_urls``; every
    column a template or a response names must exist.

    :param columns: the file's columns (JSONL keys, CSV header).
    :param field: how problems about the file itself are labelled (the operator argument).
    """
    problems: list[Problem] = []
    used: set[str] = set()
    present = set(columns)
    for path, template in config.templates().items():
        try:
            names = template_columns(template)
        except ValueError as exc:
            problems.append((path, str(exc)))
            continue
        used |= names
        for name in sorted(names - present):
            problems.append(
                (path, f"uses {{{{ {name} }}}}, which is not a column of the input file {sorted(present)}")
            )
    responses = config.response_columns()
    for path, column in responses.items():
        if column not in present:
            problems.append(
                (path, f"names column {column!r}, which the input file does not have {sorted(present)}")
            )
    unused = [c for c in columns if c not in used and c not in responses.values() and c != IMAGE_COLUMN]
    for column in unused:
        problems.append(
            (
                field,
                f"column {column!r} is used by no template and named by no model: Together fails the evaluation "
                "with user_error; use it in a template or drop it from the file",
            )
        )
    return problems


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    known = sorted(
        set(EvaluationConfig.model_fields)
        | set(JudgeConfig.model_fields)
        | set(EvaluationModelConfig.model_fields)
    )
    problems: list[Problem] = []
    for err in exc.errors(include_url=False, include_input=False):
        # Unions add one location per member tried (model_a.str, model_a.EvaluationModelConfig): drop them.
        parts = [str(p) for p in err["loc"] if p not in ("column", "model") or p == err["loc"][0]]
        path = ".".join(parts)
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(parts[-1] if parts else "", known, n=1)
            problems.append((path, "unknown option" + (f"; did you mean {close[0]!r}?" if close else "")))
        elif err["type"] == "missing":
            problems.append((path, "is required"))
        elif parts and parts[-1] in _MODEL_FIELDS and err["type"] in ("model_type", "model_attributes_type"):
            problems.append((path, "must be a column name (a string) or a model config (a dict)"))
        else:
            problems.append((path, str(err["msg"])))
    return list(dict.fromkeys(problems))


def _raise(problems: list[Problem]) -> NoReturn:
    # Deferred: the exception tree imports Airflow, which models must not pay for on the happy path.
    from airflow_provider_together.exceptions import TogetherConfigError

    raise TogetherConfigError(problems, heading="Invalid evaluation config") from None
