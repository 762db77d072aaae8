"""
The price guard: ask Together what a new job would cost and refuse to submit above ``max_price_usd``.

It fails closed. A cap that can be bypassed silently is worse than no cap, so with ``max_price_usd`` set,
every answer that is not a usable price refuses the submission: the estimate is unavailable
(``estimation_available: false``), its price is null, missing or not a finite number >= 0, or the call
failed. A missing price is never $0. Every job kind is estimated, as the v3 SDK does (``model``,
``from_checkpoint`` and ``from_hf_model`` alike). Without a cap the estimate, or its absence, is logged and
the job goes on.

.. seealso:: https://docs.together.ai/reference/post-fine-tunes-estimate-price
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_together.exceptions import (
    TogetherAuthError,
    TogetherBadRequestError,
    TogetherError,
    TogetherFileRejectedError,
    TogetherNotFoundError,
)

if TYPE_CHECKING:
    from airflow_provider_together.hooks import TogetherHook
    from airflow_provider_together.models import FineTuneConfig, ModelLimits, PriceEstimate

__all__ = ["check_price", "dollars", "usable_price"]

log = logging.getLogger(__name__)


def dollars(value: Any) -> float | None:
    """``value`` as dollars when it is a finite number >= 0 (not a bool), else ``None``: never a made-up $0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def usable_price(estimate: PriceEstimate) -> tuple[float | None, str]:
    """
    Return ``(dollars, "")`` for a usable estimate, else ``(None, why not)``.

    Usable means: available, and a finite number of dollars >= 0.
    """
    if not estimate.estimation_available:
        return None, f"estimation unavailable: {estimate.unavailable_reason or 'no reason given'}"
    price = estimate.estimated_total_price
    if price is None:
        return None, "the estimate's estimated_total_price is null or missing"
    usd = dollars(price)
    if usd is None:
        return None, f"the estimate's estimated_total_price is not a price ({price!r})"
    return usd, ""


def check_price(
    hook: TogetherHook, config: FineTuneConfig, limits: ModelLimits, cap: float | None
) -> float | None:
    """
    Estimate the job and enforce ``cap``; return the estimated dollars (``None`` when there is no estimate).

    :param cap: ``max_price_usd``, already checked to be a finite number >= 0, or ``None``.
    :raises AirflowFailException: over the cap, or a cap with an estimate that gave no usable price (a retry
        would get the same answer).
    :raises TogetherFileRejectedError: Together says the data is invalid (``*_invalid`` reasons).
    :raises TogetherError: a cap is set and the estimate call failed after its retries (5xx, 429, no
        answer): the task fails, and its retry asks again.
    """
    try:
        estimate = hook.estimate_fine_tune_price(config.to_price_request(limits))
    except (TogetherAuthError, TogetherBadRequestError, TogetherNotFoundError):
        raise  # final: the caller fails the task with Together's message
    except TogetherError as exc:
        if cap is not None:
            raise TogetherError(
                f"max_price_usd={cap:g} is set, but the price estimate failed ({exc}); not submitting"
            ) from exc
        log.warning("No price estimate (%s); submitting anyway, as no max_price_usd is set", exc)
        return None
    reason = estimate.unavailable_reason or ""
    if not estimate.estimation_available and reason.endswith("_invalid"):
        raise TogetherFileRejectedError(f"Together will not train on this data ({reason}); not submitting")
    price, why_not = usable_price(estimate)
    if price is None:
        if cap is not None:
            raise AirflowFailException(
                f"max_price_usd={cap:g} is set, but Together gave no usable price ({why_not}); not submitting"
            )
        log.warning("No price estimate (%s); submitting anyway, as no max_price_usd is set", why_not)
        return None
    log.info(
        "Estimated price: $%.2f (train tokens %s, eval tokens %s; max_price_usd %s)",
        price,
        estimate.estimated_train_token_count,
        estimate.estimated_eval_token_count,
        "not set" if cap is None else f"${cap:.2f}",
    )
    if estimate.allowed_to_proceed is False:
        log.warning(
            "Together says the account may not cover $%.2f (limit $%s): the job may be cancelled for "
            "insufficient funds. See https://api.together.ai/settings/profile",
            price,
            estimate.user_limit,
        )
    if cap is not None and price > cap:
        raise AirflowFailException(
            f"max_price_usd: the estimated price ${price:.2f} exceeds max_price_usd=${cap:.2f}; not submitting"
        )
    return price
