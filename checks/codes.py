"""Every finding code, the check that raises it and its Chinese label. API.md fixes the codes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    code: str
    check: str  # "title", "fees", "leak", "authenticity", "filing" or "any"
    label: str


_ALL = [
    Code("TITLE_SEIZURE", "title", "房屋被查封"),
    Code("TITLE_ADVANCE_REGISTRATION", "title", "已有他人预告登记"),
    Code("TITLE_OBJECTION", "title", "存在异议登记"),
    Code("TITLE_OWNER_MISMATCH", "title", "卖方不是登记产权人"),
    Code("TITLE_NOT_FOUND", "title", "产调查无此房"),
    Code("TITLE_MORTGAGE", "title", "存在抵押，过户前须解押"),
    Code("TITLE_RESIDENCE_RIGHT", "title", "设有居住权"),
    Code("TITLE_LEASE", "title", "存在租赁"),
    Code("TITLE_EASEMENT", "title", "设有地役权"),
    Code("FEES_ARREARS", "fees", "物业费等欠费"),
    Code("LEAK_FOUND", "leak", "房漏检测发现渗漏"),
    Code("LEAK_NOT_INSPECTED", "leak", "未做房漏检测或已过期"),
    Code("LISTING_UNIT_NOT_FOUND", "authenticity", "楼盘字典无此房"),
    Code("LISTING_NOT_FOR_SALE", "authenticity", "该房已在他单交易中"),
    Code("LISTING_MISMATCH", "authenticity", "房源信息与楼盘字典不符"),
    Code("LISTING_PRICE_ANOMALY", "authenticity", "挂牌价格异常"),
    Code("LISTING_DUPLICATE", "authenticity", "同一房屋重复挂牌"),
    Code("LISTING_PHOTO_REUSED", "authenticity", "房源照片被其他房源使用"),
    Code("LISTING_UNVERIFIED", "authenticity", "房源未通过核验（核验编号无效或缺失）"),
    Code("FILING_MISSING", "filing", "交易未登记网签备案号"),
    Code("FILING_NOT_FOUND", "filing", "网签备案查无此号"),
    Code("FILING_REVOKED", "filing", "网签已被撤销"),
    Code("FILING_MISMATCH", "filing", "网签备案的房屋或买卖双方与交易不符"),
    Code("CHECK_UNAVAILABLE", "any", "数据源暂不可用，核验未完成"),
]

CODES: dict[str, Code] = {c.code: c for c in _ALL}

# The gate's own reasons (API.md "Gate answer", "Requirements"): no check finds them and no policy rule
# decides them, so they are not finding codes.
GATE_REASONS = {
    "REPORT_STALE": "没有有效的核验报告",
    "REPORT_PENDING": "核验报告生成中",
    "REQUIREMENT_OPEN": "须在本阶段前完成的要求尚未完成",
}


def label(code: str) -> str:
    """The Chinese label of a finding or gate reason code."""
    known = CODES.get(code)
    return known.label if known else GATE_REASONS.get(code, code)
