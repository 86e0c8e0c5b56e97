"""GST heads: which of CGST, SGST, IGST and cess a tax is, for systems whose taxes are named by
the user (Xero's tax components, QuickBooks' tax rates, Zoho's tax master, Tally's duty ledgers).

A tax that is not recognisably GST is `other_tax`: kept, never refused, so an organisation
outside India (VAT, US sales tax) imports with its taxes intact.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from hub_pipelines import gst

TAX_HEADS = ("cgst", "sgst", "igst", "cess")
TAX_AMOUNTS = (*TAX_HEADS, "other_tax")
ZERO = Decimal("0.00")

# Names as Indian users and Tally's duty heads write them. Checked in this order: "State Tax"
# before "Tax", and UTGST counts as SGST (union territories without a legislature).
_NAMED_HEADS = (
    (re.compile(r"^\s*(CGST|CENTRAL\s+(GST|TAX))(?![A-Z])", re.I), "cgst"),
    (
        re.compile(
            r"^\s*(SGST|UTGST|STATE\s+(GST|TAX)|UT\s+TAX|UNION\s+TERRITORY\s+TAX)(?![A-Z])", re.I
        ),
        "sgst",
    ),
    (re.compile(r"^\s*(IGST|INTEGRATED\s+(GST|TAX))(?![A-Z])", re.I), "igst"),
    (re.compile(r"(?<![A-Z])CESS(?![A-Z])", re.I), "cess"),
)


def head_from_name(name: Any) -> str | None:
    """'cgst', 'sgst', 'igst' or 'cess' for a tax named like one ("CGST9", "Central Tax",
    "UTGST @ 9%", "Compensation Cess"); None for any other name."""
    text = str(name or "").strip()
    for pattern, head in _NAMED_HEADS:
        if pattern.search(text):
            return head
    return None


def no_taxes() -> dict[str, Decimal]:
    return dict.fromkeys(TAX_AMOUNTS, ZERO)


def add_tax(totals: dict[str, Decimal], head: str | None, amount: Decimal) -> None:
    """Add a tax amount to its head. 'group' (CGST + SGST charged as one) splits in halves, the
    odd paisa going to SGST; a head that is not GST is `other_tax`; zero changes nothing."""
    if not amount:
        return
    if head == "group":
        half = gst.round_money(amount / 2)
        totals["cgst"] += half
        totals["sgst"] += amount - half
    elif head in TAX_HEADS:
        totals[head] += amount
    else:
        totals["other_tax"] += amount
