"""How a ranking's sort reads: the sort keys (the query layer's), and titles that follow them."""

from __future__ import annotations

from .._model.rows import SORT_KEYS

SORT_LABELS: dict[str, str] = {"cost": "LLM cost", "requests": "requests", "tokens": "tokens", "last_seen": "last seen"}
"""Each sort key as a title says it."""
assert set(SORT_LABELS) == set(SORT_KEYS), "a sort key without a label"


def ranking_title(noun: str, sort_by: str, sort_dir: str = "desc") -> str:
    """``Users by LLM cost``, ``Tenants by requests (ascending)``."""
    title = f"{noun} by {SORT_LABELS.get(sort_by, sort_by)}"
    return title if sort_dir == "desc" else f"{title} (ascending)"
