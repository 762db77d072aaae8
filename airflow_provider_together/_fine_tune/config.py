"""Airflow configuration the provider's operators read at import time."""

from __future__ import annotations

import configparser
import os

from airflow.providers.common.compat.sdk import conf

__all__ = ["default_deferrable"]


def default_deferrable() -> bool:
    """
    Return ``[operators] default_deferrable`` when the deployment set it, and True when it did not.

    ``conf.getboolean("operators", "default_deferrable", fallback=True)`` never reaches its fallback:
    Airflow ships the option with a default of False. A fine-tune runs for hours, so unless the
    deployment chose otherwise (environment variable or airflow.cfg), waiting must not hold a worker slot.
    """
    explicitly_set = os.environ.get("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE") is not None or (
        isinstance(conf, configparser.ConfigParser)
        and configparser.ConfigParser.has_option(conf, "operators", "default_deferrable")
    )
    if explicitly_set:
        return bool(conf.getboolean("operators", "default_deferrable", fallback=True))
    return True
