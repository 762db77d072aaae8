"""Numbers and names from Together's data rules (API reference section 4), in one place."""

from __future__ import annotations

import re

#: The SDKs refuse files above 50.1 GiB before uploading (``MAX_FILE_SIZE_GB``).
MAX_FILE_SIZE_BYTES = int(50.1 * (1 << 30))
MIN_SAMPLES = 1

SUPPORTED_EXTENSIONS = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}
#: Upload purposes the Files API knows (v3 SDK, v1 SDK and the OpenAPI spec together); only ``fine-tune``
#: gets the deep format check, the others need JSON objects (or, for ``eval``, CSV rows).
PURPOSES = (
    "fine-tune",
    "eval",
    "eval-sample",
    "eval-output",
    "eval-summary",
    "batch-api",
    "batch-generated",
    "calibration",
)

PARQUET_COLUMNS = ("input_ids", "attention_mask", "labels", "position_ids")
PARQUET_EXTRA = "airflow-provider-together[parquet]"

MAX_IMAGES_PER_MESSAGE = 10
MAX_IMAGES_PER_EXAMPLE = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: Base64 grows 3 bytes into 4 characters, so this is the longest payload a 10 MiB image can have.
MAX_IMAGE_BASE64_CHARS = 4 * -(-MAX_IMAGE_BYTES // 3)
IMAGE_URL_RE = re.compile(r"data:image/(jpeg|png|webp);base64,")
BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")

ROLES = ("system", "user", "assistant", "tool")
