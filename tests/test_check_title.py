import json
from dataclasses import asdict

import pytest

from checks import title
from checks.base import ProviderUnavailable
from tests.factories import (
    BUYER_ID,
    CO_OWNER_ID,
    SELLER_ID,
    as_stored,
    context,
    deal,
    encumbrance,
    owner,
    person,
    real_resident_ids,
    subject,
    title_record,
)

SEIZURES = {"seizure": "查封", "seizure_renewal": "续封", "pre_seizure": "预查封", "queued_seizure": "轮候查封"}
ALL_TYPES = [*SEIZURES, "mortgage", "objection", "advance_registration", "residence_right", "lease", "easement"]


def run_with(*encumbrances, **kwargs):
    return title.run(context(title=title_record(encumbrances=encumbrances), **kwargs))


def codes(outcome):
    return [f.code for f in outcome.findings]


def dump(outcome):
    return json.dumps(asdict(outcome), default=str, ensure_ascii=False)


def test_clean_title_with_seller_as_owner_has_no_findings():
    assert run_with().findings == []


def test_outcome_evidence_summarises_certificate_owners_and_active_encumbrances():
    outcome = run_with(encumbrance("mortgage"), encumbrance("lease"), encumbrance("seizure", status="released"))
    ev = outcome.evidence
    assert ev["provider"] == "memory"
    assert ev["reference"] == "memory:title/bj-yysh-3-2-602"
    assert ev["as_of"] == "2026-11-21T16:00:00+00:00"
    assert ev["retrieved_at"] == "2026-11-22T02:00:00+00:00"
    assert ev["certificate_no"] == "京(2019)海淀区不动产权第0012345号"
    assert ev["owner_count"] == 1
    assert ev["active_encumbrances"] == ["mortgage", "lease"]
    assert outcome.source == "memory"


def test_missing_title_is_title_not_found():
    outcome = title.run(context(title=None))
    assert codes(outcome) == ["TITLE_NOT_FOUND"]
    assert outcome.findings[0].evidence["provider"] == "memory"
    assert outcome.facts["title_found"] is False


@pytest.mark.parametrize("kind", list(SEIZURES))
def test_every_kind_of_seizure_is_title_seizure_saying_which(kind):
    outcome = run_with(encumbrance(kind))
    assert codes(outcome) == ["TITLE_SEIZURE"]
    assert outcome.findings[0].evidence["which"] == SEIZURES[kind]
    assert outcome.findings[0].evidence["type"] == kind


def test_seizure_evidence_names_the_court_reference_and_date():
    seizure = encumbrance(
        "seizure",
        holder="北京市朝阳区人民法院",
        reference="(2026)京0105执保88号",
        registered_at="2026-10-08T17:00:00+00:00",
    )
    finding = run_with(seizure).findings[0]
    ev = finding.evidence
    assert ev["holder"] == "北京市朝阳区人民法院"
    assert ev["encumbrance_reference"] == "(2026)京0105执保88号"
    assert ev["registered_at"] == "2026-10-08T17:00:00+00:00"
    assert ev["reference"] == "memory:title/bj-yysh-3-2-602"  # where the record came from


def test_seizure_message_names_the_court_and_the_shanghai_day_of_registration():
    seizure = encumbrance("seizure", holder="北京市朝阳区人民法院", registered_at="2026-10-08T17:00:00+00:00")
    message = run_with(seizure).findings[0].message
    assert message == "房屋已被北京市朝阳区人民法院查封（文号 (2026)京0108执保1234号，登记于 2026-10-09）"


def test_mortgage_is_title_mortgage_with_holder_and_amount():
    outcome = run_with(encumbrance("mortgage", holder="中国工商银行北京海淀支行", amount="1200000"))
    finding = outcome.findings[0]
    assert finding.code == "TITLE_MORTGAGE"
    assert finding.evidence["holder"] == "中国工商银行北京海淀支行"
    assert finding.evidence["amount"] == "1200000.00"
    assert "中国工商银行北京海淀支行" in finding.message and "1200000.00 元" in finding.message
    assert "过户前须解押" in finding.message


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("objection", "TITLE_OBJECTION"),
        ("residence_right", "TITLE_RESIDENCE_RIGHT"),
        ("lease", "TITLE_LEASE"),
        ("advance_registration", "TITLE_ADVANCE_REGISTRATION"),
    ],
)
def test_each_other_encumbrance_has_its_code_and_names_its_holder(kind, code):
    finding = run_with(encumbrance(kind, holder="王某某")).findings[0]
    assert finding.code == code
    assert finding.evidence["holder"] == "王某某"
    assert "王某某" in finding.message


def test_advance_registration_for_this_deals_buyer_gives_no_finding():
    subj = subject(deal=deal(buyer_name="李明", buyer_id=BUYER_ID))
    outcome = run_with(encumbrance("advance_registration", holder="李 明"), subject=subj)
    assert outcome.findings == []


def test_advance_registration_for_someone_other_than_the_deals_buyer_is_a_finding():
    subj = subject(deal=deal(buyer_name="李明"))
    outcome = run_with(encumbrance("advance_registration", holder="赵强"), subject=subj)
    assert codes(outcome) == ["TITLE_ADVANCE_REGISTRATION"]


def test_easement_is_the_info_only_title_easement():
    outcome = run_with(encumbrance("easement", holder="北京市海淀区某供热公司"))
    assert codes(outcome) == ["TITLE_EASEMENT"]
    assert outcome.findings[0].evidence["which"] == "地役权"


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_released_encumbrances_give_no_finding(kind):
    assert run_with(encumbrance(kind, status="released")).findings == []


def test_one_finding_per_active_encumbrance():
    outcome = run_with(
        encumbrance("seizure", id="e1"),
        encumbrance("queued_seizure", id="e2", holder="北京市西城区人民法院"),
        encumbrance("mortgage", id="e3", amount="500000.00"),
    )
    assert codes(outcome) == ["TITLE_SEIZURE", "TITLE_SEIZURE", "TITLE_MORTGAGE"]
    assert [f.evidence["encumbrance_id"] for f in outcome.findings] == ["e1", "e2", "e3"]


def test_seller_matching_one_of_several_owners_is_no_mismatch():
    owners = [owner("刘芳", CO_OWNER_ID, "50%"), owner("张建国", SELLER_ID, "50%")]
    assert title.run(context(title=title_record(owners=owners))).findings == []


def test_seller_with_an_owners_name_but_another_id_number_is_owner_mismatch():
    outcome = title.run(context(title=title_record(owners=[owner("张建国", CO_OWNER_ID)])))
    assert codes(outcome) == ["TITLE_OWNER_MISMATCH"]
    assert outcome.findings[0].evidence["seller_name_registered"] is True
    assert "证件号码不符" in outcome.findings[0].message


def test_seller_with_an_owners_id_number_but_another_name_is_owner_mismatch():
    outcome = title.run(context(title=title_record(owners=[owner("张建军", SELLER_ID)])))
    assert codes(outcome) == ["TITLE_OWNER_MISMATCH"]
    assert outcome.findings[0].evidence["seller_name_registered"] is False


def test_owner_mismatch_lists_owners_with_masked_id_numbers():
    owners = [owner("刘芳", CO_OWNER_ID, "50%"), owner("Mary SMITH", "E12345678", "50%")]
    finding = title.run(context(title=title_record(owners=owners))).findings[0]
    assert finding.evidence["owners"] == [
        {"name": "刘芳", "id_masked": CO_OWNER_ID[:6] + "********" + CO_OWNER_ID[-4:], "share": "50%"},
        {"name": "Mary SMITH", "id_masked": "*****5678", "share": "50%"},
    ]
    assert finding.evidence["seller"] == {"name": "张建国", "id_masked": "110105********" + SELLER_ID[-4:]}


def test_no_full_id_number_appears_anywhere_in_the_outcome():
    owners = [owner("刘芳", CO_OWNER_ID), owner("张建国", BUYER_ID)]
    outcome = title.run(context(title=title_record(owners=owners, encumbrances=[encumbrance("seizure")])))
    text = dump(outcome)
    assert codes(outcome) == ["TITLE_SEIZURE", "TITLE_OWNER_MISMATCH"]
    for number in (CO_OWNER_ID, BUYER_ID, SELLER_ID):
        assert number not in text
        assert number[6:14] not in text  # not even the birth date between the kept ends


def test_registry_copy_of_the_number_in_lower_case_still_matches_the_seller():
    number = next(n for n in real_resident_ids() if n.endswith("x"))
    subj = subject(seller=person("王小红", number))
    outcome = title.run(context(subj, title=title_record(owners=[owner("王小红", number)])))
    assert outcome.findings == []
    assert outcome.facts["seller_is_owner"] is True


def test_real_resident_ids_are_masked_as_resident_ids_in_owner_mismatch():
    numbers = real_resident_ids()
    outcome = title.run(context(title=title_record(owners=[owner("某人", n) for n in numbers])))
    text = dump(outcome)
    for number in numbers:
        assert number not in text and number.upper() not in text
        assert number.upper()[:6] + "********" + number.upper()[-4:] in text


def test_title_provider_failure_propagates_to_the_runner():
    with pytest.raises(ProviderUnavailable):
        title.run(context(failing=["title"]))


def test_findings_evidence_and_facts_are_json_safe_for_storage():
    owners = [owner("刘芳", CO_OWNER_ID)]
    outcome = title.run(context(title=title_record(owners=owners, encumbrances=[encumbrance(k) for k in ALL_TYPES])))
    assert as_stored(outcome)["facts"] == outcome.facts


# -- owners as imported: keyed hashes and masked numbers only --------------------------------------


def _imported(record):
    from risk.identity import keyed_hash, protect_record
    from tests.factories import SECRET

    return protect_record(lambda id_type, number: keyed_hash(SECRET, id_type, number), record)


def test_an_imported_owner_is_matched_with_the_seller_by_keyed_hash():
    record = _imported(title_record())
    assert "id_number" not in json.dumps(record)
    assert "TITLE_OWNER_MISMATCH" not in codes(title.run(context(title=record)))


def test_an_imported_owner_with_another_number_is_a_mismatch_shown_masked():
    record = _imported(title_record(owners=[owner(id_number=CO_OWNER_ID)]))
    outcome = title.run(context(title=record))
    assert "TITLE_OWNER_MISMATCH" in codes(outcome)
    assert CO_OWNER_ID not in dump(outcome)
    assert CO_OWNER_ID[:6] + "********" + CO_OWNER_ID[-4:] in dump(outcome)
