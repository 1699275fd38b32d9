"""The EnOS operations the provider calls, each described once, and the requests built from them."""

from __future__ import annotations

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
BATCH_PATH = "/batch-processing-service/v2.1"
