"""Identity numbers: every shared test vector, `x` read as `X`, and the masked form of each type."""

from __future__ import annotations

import csv

import pytest

from risk.identity import ID_TYPES, InvalidIdNumber, mask, normalise, resident_check_digit
from tests.api_helpers import assert_error, listing_body
from tests.conftest import real_data

ACCEPTED = {"valid", "valid_place_lookup", "checksum_valid_place_check_fails"}
REJECTED = {"invalid_format", "invalid_checksum"}
# "invalid_component" covers three kinds of fault. We reject an unknown province and an impossible
# birth date; we deliberately accept a county code used outside its years of validity, because
# genuine old IDs carry retired codes (SOURCES.md, vector 14).
COUNTY_CODE_OUT_OF_ITS_YEARS = {"110111198012010078", "110201199312010077"}


def _vectors() -> list[dict[str, str]]:
    with real_data("cn_ric_test_vectors.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_vector_has_an_expectation_here():
    for row in _vectors():
        assert row["expected"] in ACCEPTED | REJECTED | {"invalid_component"}, row


def test_every_valid_vector_is_accepted():
    for row in _vectors():
        if row["expected"] in ACCEPTED:
            assert normalise("resident_id", row["id_number"]) == row["id_number"].upper(), row


def test_malformed_and_wrong_check_digit_vectors_are_rejected():
    rows = [row for row in _vectors() if row["expected"] in REJECTED]
    assert rows
    for row in rows:
        with pytest.raises(InvalidIdNumber):
            normalise("resident_id", row["id_number"])


def test_unknown_province_and_impossible_date_vectors_are_rejected():
    rows = [
        r
        for r in _vectors()
        if r["expected"] == "invalid_component" and r["id_number"] not in COUNTY_CODE_OUT_OF_ITS_YEARS
    ]
    assert {r["id_number"][:2] for r in rows} >= {"99"}
    for row in rows:
        with pytest.raises(InvalidIdNumber):
            normalise("resident_id", row["id_number"])


def test_county_codes_outside_their_years_are_accepted():
    rows = [r for r in _vectors() if r["id_number"] in COUNTY_CODE_OUT_OF_ITS_YEARS]
    assert len(rows) == len(COUNTY_CODE_OUT_OF_ITS_YEARS)
    for row in rows:
        assert normalise("resident_id", row["id_number"]) == row["id_number"]


def test_the_check_digit_agrees_with_the_recomputed_column():
    for row in _vectors():
        if row["check_digit_computed"]:
            assert resident_check_digit(row["id_number"][:17]) == row["check_digit_computed"], row


def test_a_lower_case_x_vector_is_read_as_upper_case():
    rows = [row for row in _vectors() if row["id_number"].endswith("x")]
    assert rows
    for row in rows:
        assert normalise("resident_id", row["id_number"]).endswith("X")


def test_the_api_rejects_every_rejected_vector_naming_seller_id_number(client, auth):
    headers = auth(role="agent")
    for row in _vectors():
        if row["expected"] in REJECTED or (
            row["expected"] == "invalid_component" and row["id_number"] not in COUNTY_CODE_OUT_OF_ITS_YEARS
        ):
            body = listing_body(seller={"name": "测试", "id_number": row["id_number"]})
            error = assert_error(client.post("/api/v1/listings", json=body, headers=headers), 422, "validation_error")
            assert list(error["fields"]) == ["seller.id_number"], row


def test_the_api_accepts_every_valid_vector_and_masks_it(client, auth):
    headers = auth(role="agent")
    for row in _vectors():
        if row["expected"] in ACCEPTED:
            body = listing_body(seller={"name": "测试", "id_number": row["id_number"]})
            response = client.post("/api/v1/listings", json=body, headers=headers)
            assert response.status_code == 201, row
            number = row["id_number"].upper()
            assert response.get_json()["seller"]["id_number"] == number[:6] + "*" * 8 + number[-4:]


def test_a_lower_case_x_reads_as_upper_case_without_the_vectors_file():
    assert normalise("resident_id", " 11010519491231002x ") == "11010519491231002X"


MASKED = [
    ("resident_id", "11010519491231002X", "110105********002X"),
    ("passport", "E12345678", "*****5678"),
    ("hk_macao_permit", "H1234567890", "*******7890"),
    ("taiwan_permit", "12345678", "****5678"),
    ("foreign_permanent_id", "USA110074000001", "***********0001"),
    ("foreign_permanent_id", "911000000000000001", "**************0001"),
]


@pytest.mark.parametrize(("id_type", "number", "masked"), MASKED)
def test_masking_format_for_each_id_type(id_type: str, number: str, masked: str) -> None:
    assert mask(id_type, normalise(id_type, number)) == masked


def test_every_id_type_has_a_masking_case() -> None:
    assert {id_type for id_type, _, _ in MASKED} == set(ID_TYPES)


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        ("passport", "E12-34567"),
        ("hk_macao_permit", "X12345678"),
        ("taiwan_permit", "1234567"),
        ("foreign_permanent_id", "US1"),
    ],
)
def test_other_id_types_are_format_checked(id_type: str, number: str) -> None:
    with pytest.raises(InvalidIdNumber):
        normalise(id_type, number)
