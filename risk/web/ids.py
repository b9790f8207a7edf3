"""The shape of our object ids (`risk.db.new_id`): checked before a path segment reaches a query."""

from __future__ import annotations

import re

_ID = re.compile(r"^[a-z]{2,8}_[0-9a-z]{1,60}\Z")


def looks_like_id(text: str) -> bool:
    """False for anything `new_id` cannot have made (so NUL bytes and 10 kB strings never reach SQL)."""
    return bool(_ID.match(text))
