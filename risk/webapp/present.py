"""How the web page says things: Chinese words for the API's codes, times in Asia/Shanghai, the QR code."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import segno

from checks.codes import label
from risk.clock import SHANGHAI

DECISIONS = {
    "ALLOW": ("放行", "allow", "可以进入本阶段。"),
    "REVIEW": ("需复核", "review", "须经复核人员批准后才能进入本阶段。"),
    "BLOCK": ("禁止签约", "block", "不得进入本阶段，请先处理下列原因。"),
}
STAGES = {
    "listing": "挂牌",
    "deposit": "转定（定金）",
    "signing": "签约",
    "online_signing": "网签",
    "transfer": "过户",
}
CHECKS = {
    "title": "产权调查（产调）",
    "fees": "物业欠费",
    "leak": "房漏检测",
    "authenticity": "真房源核验",
    "filing": "网签备案",
}
CHECK_STATUS = {"clear": "无异常", "attention": "需关注", "blocking": "阻断", "unavailable": "暂不可用"}
SEVERITY = {"blocking": "阻断", "attention": "需关注", "info": "提示"}
REPORT_STATUS = {"pending": "排队中", "running": "核验中", "complete": "已完成"}
LISTING_STATUS = {"active": "在售", "withdrawn": "已下架", "sold": "已售出"}
REQUIREMENT_STATUS = {"open": "待完成", "satisfied": "已完成"}
OVERRIDE_STATUS = {"pending": "待第二位复核人批准", "approved": "已批准", "declined": "已驳回"}
NEXT_STEPS = {
    "TITLE_SEIZURE": "停止交易，不收定金；请卖方先解除查封。",
    "TITLE_ADVANCE_REGISTRATION": "停止交易：房屋已预告登记给他人。",
    "TITLE_OBJECTION": "停止交易，待异议登记注销后重新核验。",
    "TITLE_OWNER_MISMATCH": "核对卖方身份与产权证；须由登记产权人本人或其代理人出售。",
    "TITLE_NOT_FOUND": "核对房屋地址后到不动产登记中心窗口调取产调，交复核人员。",
    "TITLE_MORTGAGE": "告知买方；过户前卖方须解押。",
    "TITLE_RESIDENCE_RIGHT": "过户前须注销居住权，或取得买方书面同意。",
    "TITLE_LEASE": "签约前取得承租人放弃优先购买权的书面声明及腾房日期。",
    "TITLE_EASEMENT": "向买方说明地役权内容。",
    "FEES_ARREARS": "请卖方过户前结清欠费，或按物业欠费先行垫付承诺处理。",
    "LEAK_FOUND": "签约前取得买方对渗漏情况的书面确认。",
    "LEAK_NOT_INSPECTED": "签约前预约房漏检测。",
    "LISTING_UNIT_NOT_FOUND": "核对楼栋、单元、房号；如确有此房，请复核人员核实。",
    "LISTING_NOT_FOR_SALE": "该房已在其他交易中，不得再收定金。",
    "LISTING_MISMATCH": "按楼盘字典核对面积、户型、楼层、朝向、建成年代后更正房源。",
    "LISTING_PRICE_ANOMALY": "与业主核实委托价，按书面委托价挂牌。",
    "LISTING_DUPLICATE": "下架重复的房源，只保留一条。",
    "LISTING_PHOTO_REUSED": "换成本房实拍照片。",
    "LISTING_UNVERIFIED": "向卖方取得本房屋、本产权人的有效房源核验编号，在「更正房源」中填写后重新核验。",
    "FILING_MISSING": "网签后由合同系统登记网签备案号，再重新核验。",
    "FILING_NOT_FOUND": "核对网签备案号；号码无误的，到住建部门核实后交复核人员。",
    "FILING_REVOKED": "网签已撤销，停止过户；重新网签后再核验。",
    "FILING_MISMATCH": "停止过户：核对网签合同上的房屋和买卖双方是否与本交易一致。",
    "CHECK_UNAVAILABLE": "数据源暂时无法查询：稍后重新核验，或到窗口调取材料后交复核人员。",
}
EVIDENCE_MAIN = {"provider": "来源", "reference": "编号", "as_of": "数据截至", "retrieved_at": "查询时间"}
_CHINESE_TERMS = re.compile(r"^(.*?。)\s*[A-Z]")
_MONTHS = re.compile(r"(\d+)\s*个月内")


def decision(code: str | None) -> dict[str, str]:
    word, css, meaning = DECISIONS.get(code or "", ("未出结论", "none", "报告尚未完成。"))
    return {"code": code or "", "word": word, "css": css, "meaning": meaning}


def shanghai(value: Any) -> str:
    """An ISO time or datetime as `2026-11-22 10:00` in Asia/Shanghai; empty for none."""
    if not value:
        return ""
    if isinstance(value, str) and "T" not in value:
        return value  # a calendar date stays as it is
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        return str(value)
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def age(since: Any, now: datetime) -> str:
    """How long ago, in words: `3 小时 5 分钟`."""
    moment = datetime.fromisoformat(since) if isinstance(since, str) else since
    minutes = max(0, int((now - moment).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} 天" if days else "", f"{hours} 小时" if hours else "", f"{minutes} 分钟"]
    return " ".join(p for p in parts if p)


def terms(text: str) -> str:
    """The Chinese half of a catalog's bilingual terms."""
    found = _CHINESE_TERMS.match(text or "")
    return found.group(1) if found else text


def commitment_line(commitment: dict[str, Any]) -> str:
    """The commitment's promise in one plain line, e.g. `漏水保修：过户后 12 个月内`."""
    code, text = commitment.get("code"), commitment.get("terms") or ""
    months = _MONTHS.search(text)
    if code == "LEAK_WARRANTY" and months:
        return f"漏水保修：过户后 {months.group(1)} 个月内"
    if code == "FEE_ARREARS_ADVANCE":
        return "物业欠费先行垫付：过户前的欠费由经纪机构先行垫付" + ("，不设申请期限" if "不设期限" in text else "")
    if code == "SEIZURE_ADVANCE":
        return "签前查封先行垫付：转定至网签之间被查封的，先行垫付定金损失"
    if code == "GENUINE_LISTING":
        return "真房源：经证实为假房源的，按承诺赔付"
    return str(commitment.get("title") or code)


def period(commitment: dict[str, Any]) -> str:
    start, end = commitment.get("valid_from"), commitment.get("valid_until")
    if not start:
        return "起止日期待过户日期确定后计算"
    return f"{shanghai(start)} 起" + (f"，至 {shanghai(end)} 止" if end else "，长期有效")


def fact(value: Any) -> str:
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def css_string(text: str) -> str:
    """`text` as a quoted CSS string (escaping what could end it)."""
    escaped = "".join(ch if ch.isalnum() or ch in " ·:-（）/_" or ord(ch) > 127 else f"\\{ord(ch):x} " for ch in text)
    return f'"{escaped}"'


def qr_svg(url: str) -> str:
    """An inline SVG QR code of `url`, drawn here (no outside service sees the report's address)."""
    return str(segno.make(url, error="m").svg_inline(scale=3, border=2, dark="#000", light="#fff"))


JINJA_GLOBALS = {
    "STAGES": STAGES,
    "CHECKS": CHECKS,
    "CHECK_STATUS": CHECK_STATUS,
    "SEVERITY": SEVERITY,
    "REPORT_STATUS": REPORT_STATUS,
    "OVERRIDE_STATUS": OVERRIDE_STATUS,
    "REQUIREMENT_STATUS": REQUIREMENT_STATUS,
    "LISTING_STATUS": LISTING_STATUS,
    "NEXT_STEPS": NEXT_STEPS,
    "EVIDENCE_MAIN": EVIDENCE_MAIN,
    "decision": decision,
    "label": label,
    "terms": terms,
    "commitment_line": commitment_line,
    "period": period,
    "fact": fact,
}
JINJA_FILTERS = {"shanghai": shanghai}
