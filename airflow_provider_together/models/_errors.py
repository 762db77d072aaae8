"""
Turn pydantic errors and rule problems into the single ``TogetherConfigError`` the operator reports.

Messages are built from error types and field paths only, never from the rejected input, because a value
pasted into the wrong field may be a secret.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, NoReturn

from airflow_provider_together.models._names import FLAT_KEYS

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["pydantic_problems", "raise_config_error"]

Problem = tuple[str, str]
_UNION_GROUPS = {"training_method", "training_type", "lr_scheduler"}
_TAGS = {"sft", "dpo", "Lora", "Full", "cosine", "linear"}
_MEMBER_LABELS = {"int", "float", "str", "bool", "none"}


def _known_names() -> list[str]:
    # Imported here: config imports this module, and the names are needed only on the error path.
    from airflow_provider_together.models import _parts
    from airflow_provider_together.models.config import FineTuneConfig

    names = set(FineTuneConfig.model_fields) | set(FLAT_KEYS) | {"lora"}
    for part in vars(_parts).values():
        if isinstance(part, type) and hasattr(part, "model_fields") and part.__module__ == _parts.__name__:
            names |= set(part.model_fields)
    return sorted(names)


def _path(loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """The dotted field path users write, and whether the error is about one member of a plain union."""
    parts = [str(p) for p in loc]
    # Discriminated unions put the tag in the location (training_method.dpo.dpo_beta); users never write it.
    if len(parts) > 1 and parts[0] in _UNION_GROUPS and parts[1] in _TAGS:
        del parts[1]
    # Plain unions add one location per member tried (batch_size.int, batch_size.literal['max']).
    kept = [p for p in parts if p not in _MEMBER_LABELS and "[" not in p]
    return ".".join(kept), len(kept) < len(parts)


def pydantic_problems(exc: ValidationError) -> list[Problem]:
    """One ``(field_path, message)`` per pydantic error, with a spelling hint for unknown options."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False, include_input=False):
        path, union_member = _path(err["loc"])
        if err["type"] == "extra_forbidden":
            name = str(err["loc"][-1]) if err["loc"] else ""
            close = difflib.get_close_matches(name, _known_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append((path, f"unknown option{hint}"))
        elif err["type"] == "missing":
            problems.append((path, "is required"))
        elif union_member and problems and problems[-1][0] == path:
            # Several members of one union failed: one line saying what any of them would accept.
            problems[-1] = (path, f"{problems[-1][1]}, or {str(err['msg'])[0].lower()}{str(err['msg'])[1:]}")
        else:
            problems.append((path, str(err["msg"])))
    return problems


def raise_config_error(problems: list[Problem], spelled: dict[str, str]) -> NoReturn:
    """
    Raise one ``TogetherConfigError`` listing every problem, in the user's own spelling of each field.

    :param problems: ``(nested_field_path, message)`` pairs.
    :param spelled: nested path -> the flat keyword the user wrote for it.
    """
    # Deferred: the exception tree imports Airflow, which this package must not pay for on the happy path.
    from airflow_provider_together.exceptions import TogetherConfigError

    if not problems:
        problems = [("", "invalid config")]
    shown = [(spelled.get(path, path), message) for path, message in problems]
    raise TogetherConfigError(list(dict.fromkeys(shown))) from None
