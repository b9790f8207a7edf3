"""The listing form, to add a listing or correct one: its fields in Chinese, read into the API's input (or
PATCH) and validated by the API's own schema, its errors said in Chinese next to each field."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from werkzeug.datastructures import MultiDict

# (form name, label, API field path, input type, hint)
LISTING_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("external_id", "房源编号", "external_id", "text", "本公司系统中的编号"),
    ("unit_id", "楼盘字典房屋编号", "unit_id", "text", ""),
    ("city", "城市", "city", "text", "如：北京"),
    ("community", "小区", "community", "text", ""),
    ("building", "楼栋", "building", "text", ""),
    ("unit", "单元", "unit", "text", ""),
    ("room", "房号", "room", "text", ""),
    ("floor", "楼层", "floor", "number", ""),
    ("area_m2", "建筑面积（平方米）", "area_m2", "text", "如：89.50"),
    ("layout", "户型", "layout", "text", "如：2室1厅"),
    ("orientation", "朝向", "orientation", "text", "如：南北"),
    ("build_year", "建成年代", "build_year", "number", "如：1998"),
    ("asking_price", "挂牌价（元，总价）", "asking_price", "text", ""),
    ("entrusted_price", "业主书面委托价（元，可不填）", "entrusted_price", "text", ""),
    ("verification_code", "房源核验编号（可不填）", "verification_code", "text", "上海等城市挂牌须填写"),
    ("seller_name", "卖方姓名", "seller.name", "text", ""),
    ("seller_id_number", "卖方证件号码", "seller.id_number", "text", "居民身份证 18 位"),
)
ID_TYPES = {
    "resident_id": "居民身份证",
    "passport": "护照",
    "hk_macao_permit": "港澳居民来往内地通行证",
    "taiwan_permit": "台湾居民来往大陆通行证",
    "foreign_permanent_id": "外国人永久居留身份证",
}
_INTEGERS = ("floor", "build_year")
_OPTIONAL = ("entrusted_price", "verification_code")  # blank: none given (on a correction, cleared)
# On a correction the ID number is never shown again: left blank, the seller stays as they are.
KEEP_SELLER_HINT = "不更换卖方请留空（原号码不再显示）"
_NEW_SELLER_NEEDS_ID = "re-enter the id number to change the seller"
_MESSAGES = (
    ("Missing data", "必填"),
    ("must not be blank", "必填"),
    ("Field may not be null", "必填"),
    ("Not a valid integer", "请填写整数"),
    ("Not a valid number", "请填写数字"),
    ("decimal", "请填写数字，最多两位小数"),
    ("Length must be between", "长度不符合要求"),
    ("Shorter than minimum", "必填"),
    ("Longer than maximum", "太长了"),
    ("Must be greater than or equal", "数值太小"),
    ("Must be less than or equal", "数值太大"),
    ("must be at most", "数值太大"),
    ("check digit", "证件号码校验位不对，请逐位核对"),
    (_NEW_SELLER_NEEDS_ID, "更换卖方姓名或证件类型时，请重新填写证件号码"),
    ("Must be one of", "请从列表中选择"),
)
GENERIC = "填写有误，请核对后重新填写"


def listing_input(form: MultiDict[str, str]) -> dict[str, Any]:
    """The API's listing input from the form (blank optional fields left out)."""
    data = {path: value for path, value in _listing_fields(form).items() if value is not None}
    data["seller"] = _seller(form)
    return data


def listing_correction(form: MultiDict[str, str], listing: Any) -> dict[str, Any]:
    """The API's PATCH from the correction form: every field as the form holds it (blank optional fields
    cleared); the seller replaced only when an ID number is given, since the stored one is never shown."""
    data = _listing_fields(form)
    seller = _seller(form)
    if seller["id_number"]:
        data["seller"] = seller
    elif (seller["name"], seller["id_type"]) != (listing.seller_name, listing.seller_id_type):
        raise ma.ValidationError({"seller": {"id_number": [_NEW_SELLER_NEEDS_ID]}})
    return data


def listing_values(shown: dict[str, Any]) -> dict[str, str]:
    """The correction form filled in from the listing as the API shows it; the seller's ID number left blank."""
    values = {name: "" if shown[path] is None else str(shown[path]) for name, _label, path, _kind, _hint
              in LISTING_FIELDS if not path.startswith("seller.")}  # fmt: skip
    seller = shown["seller"]
    values.update(seller_name=seller["name"], seller_id_number="", seller_id_type=seller["id_type"])
    return values


def _listing_fields(form: MultiDict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, _label, path, _kind, _hint in LISTING_FIELDS:
        value = form.get(name, "").strip()
        if path.startswith("seller."):
            continue
        if name in _OPTIONAL and not value:
            data[path] = None
            continue
        data[path] = int(value) if name in _INTEGERS and value.lstrip("-").isdigit() else value
    return data


def _seller(form: MultiDict[str, str]) -> dict[str, str]:
    return {
        "name": form.get("seller_name", "").strip(),
        "id_number": form.get("seller_id_number", "").strip(),
        "id_type": form.get("seller_id_type", "resident_id"),
    }


def chinese(message: str) -> str:
    for english, said in _MESSAGES:
        if english.lower() in message.lower():
            return said
    return GENERIC


def field_errors(messages: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested errors as {form field: [Chinese messages]}."""
    by_path = {path: name for name, _label, path, _kind, _hint in LISTING_FIELDS}
    by_path["seller.id_type"] = "seller_id_type"
    errors: dict[str, list[str]] = {}
    for key, value in messages.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            for name, said in field_errors(value, f"{path}.").items():
                errors.setdefault(name, []).extend(said)
            continue
        texts = value if isinstance(value, list) else [value]
        name = by_path.get(path, "_form")
        errors.setdefault(name, []).extend(dict.fromkeys(chinese(str(t)) for t in texts))
    return errors
