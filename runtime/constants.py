"""The preprocessing's constants, read from ``runtime/preprocess.json``, the one file the page (web/) reads too.

    from runtime.constants import PREPROCESS
    PREPROCESS["WORK_SIZE"]  # 120 (px); preprocess.json says what each one means

This module imports nothing but the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path

FILE = Path(__file__).with_name("preprocess.json")
PREPROCESS: dict[str, float | list[str]] = {
    name: entry["value"] for name, entry in json.loads(FILE.read_text()).items() if isinstance(entry, dict)
}
