"""The one logger of this project's Lambda functions: structured JSON lines on stdout.

One object per line, so CloudWatch Logs Insights can filter on fields (``level``, ``message`` and
whatever the caller adds). Every function's asset carries this module at its root
(``stacks/functions/function_code.py``, ``SHARED_MODULES``); standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def log(level: str, message: str, **fields: Any) -> None:
    """Write one JSON log line to stdout (Lambda ships stdout to the function's log group)."""
    record = {"level": level, "message": message, **fields}
    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
