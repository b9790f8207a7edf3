"""Photos reused from other listings."""

from __future__ import annotations

from typing import Any

from checks.authenticity.common import other_listing, presign_stamp, who
from checks.base import CheckContext, Finding


def findings(ctx: CheckContext) -> list[Finding]:
    """Each distinct photo hash of the listing that another listing, of any status or company, carries."""
    listing = ctx.subject
    store, photos = listing.get("store_id"), listing.get("photos") or []
    first: dict[str, dict[str, Any]] = {}  # each hash once, with the first photo that has it
    for photo in photos:
        if photo.get("sha256"):
            first.setdefault(photo["sha256"], photo)
    users_of = ctx.market.listings_with_photos(list(first), listing["listing_id"])
    reused: list[dict[str, Any]] = [
        {"sha256": sha, "url": photo.get("url"), "used_by": [other_listing(u, store) for u in users_of[sha]]}
        for sha, photo in first.items()
        if sha in users_of
    ]
    if not reused:
        return []
    evidence = {**presign_stamp(ctx), "photos": reused}
    shown = [u for p in reused for u in p["used_by"]]
    return [
        Finding("LISTING_PHOTO_REUSED", f"{len(reused)} 张房源照片也出现在其他房源中：{who(shown, '条')}", evidence)
    ]


def checked(listing: dict[str, Any]) -> int:
    return len({p.get("sha256") for p in listing.get("photos") or [] if p.get("sha256")})
