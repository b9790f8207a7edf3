"""真房源: the unit exists, is really for sale, at the owner's price, with its own photos.

The listing is held against the building dictionary (楼盘字典), the owner's entrusted price, the
community's recent unit prices, and Presign's own listings (duplicates, reused photos, open deals).
Another brokerage's listing or deal is never named in evidence: only "another brokerage"; another
store's of the same company only "another store", since the listing's agents read the report too.

Presign's market data (`presign import-market`, listings/market/data.py) adds what the dictionary
provider does not know: the community found by normalised or fuzzy name (with its score), its profile
(a unit missing from the dictionary is judged against what the community has), its recent prices (with
a fallback to the bizcircle, then the district, when the community has too few), and re-posted units
found by their attributes whatever their unit_id and however their text is written. A `unit` record
from the dictionary provider stays authoritative when there is one.
"""

from __future__ import annotations

from checks.authenticity import dictionary, photos, prices, profile, reposts, verification
from checks.authenticity.common import nothing
from checks.base import CheckContext, CheckOutcome, Finding
from checks.registry import register
from listings.market.data import MarketData


@register("authenticity")
def run(ctx: CheckContext) -> CheckOutcome:
    listing = ctx.subject
    provider = ctx.providers("unit")
    market: MarketData | None = ctx.market_data
    # The authority's verification code (房源核验) is asked beside the dictionary, not after it.
    verifying = ctx.pool.submit(verification.verify, ctx) if ctx.pool and listing.get("verification_code") else None
    unit = provider.get("unit", listing["unit_id"])
    lookup = dictionary.find_community(market, listing, unit)
    community = lookup.match if lookup is not None else None
    findings: list[Finding] = []
    if unit is None:
        evidence = {**nothing(ctx, provider.name), "unit_id": listing["unit_id"], "unit_found": False}
        if community is None:
            findings.append(dictionary.unit_not_found(ctx, provider.name, lookup))
        else:
            assert market is not None and lookup is not None  # a community was found in it
            profile_findings, evidence["community_profile"] = profile.mismatch(ctx, listing, market, community, lookup)
            findings += profile_findings
    else:
        evidence = unit.evidence(unit_id=listing["unit_id"], unit_found=True)
        findings += dictionary.mismatch(listing, unit)
    if lookup is not None:
        evidence["community"] = lookup.evidence()
    findings += prices.entrusted(ctx, listing)
    if unit is not None or community is not None:
        price_findings, evidence["community_prices"] = prices.judge(ctx, listing, unit, market, lookup)
        if community is not None and lookup is not None and market is not None:
            model_findings, evidence["price_model"] = prices.by_model(ctx, listing, unit, market, lookup)
            price_findings = prices.with_model(price_findings, model_findings, evidence["price_model"])
        findings += price_findings
    unit_print = reposts.fingerprint(listing, unit, lookup)
    if market is not None:
        findings += prices.history(ctx, listing, market, community, unit_print if community is not None else None)
    findings += reposts.findings(ctx, market, unit_print)
    findings += photos.findings(ctx)
    evidence["photos_checked"] = photos.checked(listing)
    verified = verifying.result() if verifying is not None else verification.verify(ctx)
    findings += verified.findings
    if verified.evidence:
        evidence["verification"] = verified.evidence

    looked = evidence.get("community_prices", {})
    facts = {"unit_found": unit is not None, "community_price_judged": bool(looked.get("judged"))}
    if lookup is not None:
        facts["community_matched"] = community is not None
        facts["price_level"] = looked.get("level")
    facts.update(verified.facts)
    return CheckOutcome(
        check="authenticity",
        findings=findings,
        source=unit.source if unit is not None else provider.name,
        retrieved_at=unit.retrieved_at if unit is not None else ctx.clock.now(),
        evidence=evidence,
        facts=facts,
        fingerprint=unit_print if market is not None else None,  # kept with the result (see the runner)
    )
