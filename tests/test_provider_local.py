from __future__ import annotations

import json

from sqlalchemy import select

from checks.providers import ProviderSet
from checks.providers.importer import import_records
from checks.providers.local import LocalProvider
from checks.providers.models import ProviderRecord
from checks.providers.schemas import validate
from risk.clock import FrozenClock
from risk.identity import protect_record
from risk.runtime import Runtime
from tests.factories import COMMUNITY_ID, UNIT_ID, community_prices_record, inspections_record, title_record


def test_imported_record_is_answered_with_its_validated_payload(rt: Runtime, clock: FrozenClock) -> None:
    import_records(rt, [{"kind": "title", **title_record()}])

    fetched = LocalProvider(rt.engine, clock).get("title", UNIT_ID)

    assert fetched is not None
    assert fetched.payload == protect_record(rt.id_hash, validate("title", title_record()))


def test_imported_owners_keep_only_keyed_hashes_and_masked_id_numbers(rt: Runtime) -> None:
    record = title_record()
    import_records(rt, [{"kind": "title", **record}])

    with rt.sessions() as session:
        stored = session.scalars(select(ProviderRecord.payload).where(ProviderRecord.kind == "title")).one()

    number = record["owners"][0]["id_number"]
    assert number not in json.dumps(stored)
    owner = stored["owners"][0]
    assert "id_number" not in owner
    assert owner["id_masked"] == number[:6] + "*" * 8 + number[-4:]
    assert owner["id_hashes"]["resident_id"] == rt.id_hash("resident_id", number)


def test_answer_names_local_source_reference_and_retrieval_time(rt: Runtime, clock: FrozenClock) -> None:
    import_records(rt, [{"kind": "title", **title_record()}])

    fetched = LocalProvider(rt.engine, clock).get("title", UNIT_ID)

    assert fetched is not None
    assert (fetched.source, fetched.reference, fetched.retrieved_at) == ("local", f"local:title/{UNIT_ID}", clock.now())


def test_missing_record_answers_none(rt: Runtime, clock: FrozenClock) -> None:
    assert LocalProvider(rt.engine, clock).get("title", "no-such-unit") is None


def test_no_inspections_on_record_answers_none(rt: Runtime, clock: FrozenClock) -> None:
    import_records(rt, [{"kind": "title", **title_record()}])

    assert LocalProvider(rt.engine, clock).get("inspections", UNIT_ID) is None


def test_same_key_under_another_kind_is_not_confused(rt: Runtime, clock: FrozenClock) -> None:
    import_records(rt, [{"kind": "inspections", **inspections_record()}])

    provider = LocalProvider(rt.engine, clock)

    assert provider.get("title", UNIT_ID) is None
    assert provider.get("inspections", UNIT_ID) is not None


def test_community_prices_are_found_by_community_id(rt: Runtime, clock: FrozenClock) -> None:
    import_records(rt, [{"kind": "community_prices", **community_prices_record()}])

    fetched = LocalProvider(rt.engine, clock).get("community_prices", COMMUNITY_ID)

    assert fetched is not None and fetched.payload["median_unit_price"] == "70000.00"


def test_local_setting_builds_local_adapters(rt: Runtime) -> None:
    providers = ProviderSet.from_settings(rt.settings, rt.engine)

    assert providers.for_kind("title").name == "local"
