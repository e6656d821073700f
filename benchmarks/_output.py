"""How every benchmark reports: the full result as JSON, a summary, optionally a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], summary: str, json_path: Path | None) -> None:
    """Print ``result`` as JSON then ``summary``; also write the JSON to ``json_path``."""
    text = json.dumps(result, indent=2)
    print(text)
    print(f"\n{summary}")
    if json_path:
        json_path.write_text(text)
