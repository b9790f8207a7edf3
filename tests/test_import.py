from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from checks.providers.importer import ImportRejected, import_command, import_lines, import_records
from checks.providers.local import LocalProvider
from checks.providers.models import ProviderRecord
from risk.runtime import Runtime
from tests.factories import (
    UNIT_ID,
    community_prices_record,
    fee_account_record,
    fee_item,
    inspections_record,
    title_record,
    unit_record,
)


def records() -> list[dict[str, Any]]:
    return [
        {"kind": "unit", **unit_record()},
        {"kind": "community_prices", **community_prices_record()},
        {"kind": "title", **title_record()},
        {"kind": "fee_account", **fee_account_record()},
        {"kind": "inspections", **inspections_record()},
    ]


def jsonl(items: list[Any]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def stored(rt: Runtime) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ProviderRecord)) or 0)


def payload(rt: Runtime, kind: str, key: str = UNIT_ID) -> dict[str, Any] | None:
    fetched = LocalProvider(rt.engine, rt.clock).get(kind, key)
    return None if fetched is None else fetched.payload


def rejected(rt: Runtime, lines: list[str]) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_lines(rt, lines)
    return caught.value


def run_cli(rt: Runtime, args: list[str], stdin: str | None = None) -> Result:
    env = {"PRESIGN_INSTANCE": str(rt.settings.instance), "PRESIGN_DATABASE_URL": rt.settings.database_url}
    result = CliRunner().invoke(import_command, args, input=stdin, env=env, catch_exceptions=False)
    rt.activate()  # the command activated (and closed) a runtime of its own
    return result


# -- the library ---------------------------------------------------------------------------------


def test_good_records_are_written_and_served_locally(rt: Runtime) -> None:
    result = import_records(rt, records())

    assert result.total == 5 and stored(rt) == 5
    assert payload(rt, "fee_account") is not None


def test_result_counts_records_per_kind(rt: Runtime) -> None:
    result = import_records(rt, records())

    assert result.by_kind == {
        "unit": 1, "community_prices": 1, "title": 1, "fee_account": 1, "inspections": 1, "listing_verification": 0,
        "contract_filing": 0,
    }  # fmt: skip


def test_reimport_updates_the_stored_record(rt: Runtime) -> None:
    import_records(rt, records())
    owed = fee_account_record(items=[fee_item(amount_paid="0.00")])

    result = import_records(rt, [{"kind": "fee_account", **owed}])

    assert (result.inserted, result.updated) == (0, 1)
    assert payload(rt, "fee_account")["items"][0]["amount_paid"] == "0.00"  # type: ignore[index]
    assert stored(rt) == 5


def test_reimport_counts_new_and_updated(rt: Runtime) -> None:
    import_records(rt, records()[:2])

    result = import_records(rt, records())

    assert (result.inserted, result.updated) == (3, 2)


def test_last_record_for_a_key_wins_within_one_input(rt: Runtime) -> None:
    first = {"kind": "unit", **unit_record(room="601")}
    last = {"kind": "unit", **unit_record(room="602")}

    result = import_records(rt, [first, last])

    assert (result.total, result.duplicates) == (1, 1)
    assert payload(rt, "unit")["room"] == "602"  # type: ignore[index]


def test_stored_payload_is_the_validated_form(rt: Runtime) -> None:
    import_records(rt, [{"kind": "fee_account", **fee_account_record(items=[fee_item(amount_due=120)])}])  # type: ignore[arg-type]

    assert payload(rt, "fee_account")["items"][0]["amount_due"] == "120.00"  # type: ignore[index]


def test_bad_line_is_reported_with_its_number_and_nothing_is_written(rt: Runtime) -> None:
    bad = {"kind": "title", **title_record(owners=[{"name": "张建国"}])}

    error = rejected(rt, jsonl([*records(), bad]).splitlines())

    assert error.problems == ["line 6: owners.0.id_number: Missing data for required field."]
    assert stored(rt) == 0


def test_bad_reimport_leaves_earlier_records_untouched(rt: Runtime) -> None:
    import_records(rt, records())
    changed = {"kind": "unit", **unit_record(room="999")}

    rejected(rt, jsonl([changed, {"kind": "unit"}]).splitlines())

    assert payload(rt, "unit")["room"] == "602"  # type: ignore[index]


def test_line_that_is_not_json_is_a_bad_line(rt: Runtime) -> None:
    error = rejected(rt, ['{"kind": "unit",'])

    assert error.problems[0].startswith("line 1: Not JSON")


def test_line_that_is_not_an_object_is_a_bad_line(rt: Runtime) -> None:
    assert rejected(rt, ["[1, 2]"]).problems == ["line 1: Expected a JSON object."]


def test_unknown_kind_is_a_bad_line(rt: Runtime) -> None:
    error = rejected(rt, [json.dumps({"kind": "parcel", "unit_id": "x"})])

    assert error.problems[0].startswith("line 1: kind: Unknown kind 'parcel'")


def test_missing_kind_is_a_bad_line(rt: Runtime) -> None:
    assert rejected(rt, [json.dumps(unit_record())]).problems == ["line 1: kind: Missing data for required field."]


def test_every_bad_line_is_reported(rt: Runtime) -> None:
    error = rejected(rt, ["nope", jsonl(records()[:1]).strip(), "[]", ""])

    assert [p.split(":")[0] for p in error.problems] == ["line 1", "line 3"]
    assert error.bad_records == 2


def test_blank_lines_are_skipped(rt: Runtime) -> None:
    lines = ["", *jsonl(records()).splitlines(), "   ", ""]

    assert import_lines(rt, lines).total == 5


def test_byte_order_mark_on_the_first_line_is_ignored(rt: Runtime) -> None:
    lines = (jsonl(records()[:1])).encode("utf-8-sig").splitlines()

    assert import_lines(rt, lines).total == 1


def test_import_records_names_bad_records_by_position(rt: Runtime) -> None:
    with pytest.raises(ImportRejected) as caught:
        import_records(rt, [records()[0], {"kind": "unit"}])

    assert caught.value.problems[0].startswith("record 2: ")


# -- the command ---------------------------------------------------------------------------------


def test_command_imports_a_file_and_prints_a_summary(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(jsonl(records()), encoding="utf-8")

    result = run_cli(rt, [str(path)])

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("imported 5 records (unit 1, community_prices 1, title 1")
    assert stored(rt) == 5


def test_command_reads_stdin_for_dash(rt: Runtime) -> None:
    result = run_cli(rt, ["-"], stdin=jsonl(records()))

    assert result.exit_code == 0, result.stderr
    assert stored(rt) == 5


def test_command_reports_bad_lines_on_stderr_and_exits_1(rt: Runtime) -> None:
    bad = {"kind": "fee_account", **fee_account_record(items=[fee_item(category="internet")])}

    result = run_cli(rt, ["-"], stdin=jsonl([*records(), bad]))

    assert result.exit_code == 1
    assert "line 6: items.0.category: Must be one of:" in result.stderr
    assert result.stdout == "" and stored(rt) == 0


def test_command_caps_the_problems_it_prints(rt: Runtime) -> None:
    result = run_cli(rt, ["-"], stdin="nope\n" * 80)

    assert result.exit_code == 1
    assert "line 50: " in result.stderr and "line 51: " not in result.stderr
    assert "… and 30 more problems" in result.stderr
