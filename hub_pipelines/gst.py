"""Pure Indian GST helpers: state codes, GSTIN/PAN validation and generation, tax splits, FY labels.

Used by the connectors (mapping source state codes), the asset checks (GSTIN validity) and the
simulators (generating valid data). No I/O, no third-party imports.
"""

from __future__ import annotations

import random
import re
import string
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

# GST state/UT code -> name, as used in the first two digits of a GSTIN and in e-invoice
# "place of supply". 25 (Daman and Diu) and 28 (undivided Andhra Pradesh) are legacy codes that
# still appear on old registrations, so they stay in the table.
STATE_CODES: dict[str, str] = {
    "01": "Jammu and Kashmir",
    "02": "Himachal Pradesh",
    "03": "Punjab",
    "04": "Chandigarh",
    "05": "Uttarakhand",
    "06": "Haryana",
    "07": "Delhi",
    "08": "Rajasthan",
    "09": "Uttar Pradesh",
    "10": "Bihar",
    "11": "Sikkim",
    "12": "Arunachal Pradesh",
    "13": "Nagaland",
    "14": "Manipur",
    "15": "Mizoram",
    "16": "Tripura",
    "17": "Meghalaya",
    "18": "Assam",
    "19": "West Bengal",
    "20": "Jharkhand",
    "21": "Odisha",
    "22": "Chhattisgarh",
    "23": "Madhya Pradesh",
    "24": "Gujarat",
    "25": "Daman and Diu",
    "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra",
    "28": "Andhra Pradesh (Before Division)",
    "29": "Karnataka",
    "30": "Goa",
    "31": "Lakshadweep",
    "32": "Kerala",
    "33": "Tamil Nadu",
    "34": "Puducherry",
    "35": "Andaman and Nicobar Islands",
    "36": "Telangana",
    "37": "Andhra Pradesh",
    "38": "Ladakh",
    "97": "Other Territory",
}

# Spellings seen in source systems (Tally ledgers, old invoices, addresses) -> GST state code.
_NAME_ALIASES: dict[str, str] = {
    "jammu & kashmir": "01",
    "j&k": "01",
    "uttaranchal": "05",
    "new delhi": "07",
    "nct of delhi": "07",
    "delhi nct": "07",
    "national capital territory of delhi": "07",
    "orissa": "21",
    "chattisgarh": "22",
    "dadra and nagar haveli": "26",
    "dadra & nagar haveli": "26",
    "dadra & nagar haveli and daman & diu": "26",
    "daman & diu": "25",
    "andhra pradesh (new)": "37",
    "andhra pradesh (old)": "28",
    "pondicherry": "34",
    "andaman & nicobar islands": "35",
    "andaman and nicobar": "35",
    "tamilnadu": "33",
    "other territories": "97",
}


def _name_key(name: str) -> str:
    return " ".join(name.lower().replace(".", " ").split())


_CODE_BY_NAME: dict[str, str] = {_name_key(n): c for c, n in STATE_CODES.items()}
_CODE_BY_NAME["andhra pradesh"] = "37"  # the post-2014 state, not the legacy "Before Division" code
_CODE_BY_NAME.update({_name_key(alias): code for alias, code in _NAME_ALIASES.items()})

# Zoho Books' alphabetic state codes (place_of_supply, place_of_contact, address state_code).
# Zoho's exact list is not published in the API reference; several codes have two variants in
# the wild (Telangana TS/TG, Odisha OR/OD, Uttarakhand UK/UT/UA, Chhattisgarh CG/CT, Puducherry
# PY/PD), so both are accepted. The first entry per state is what the simulator emits.
ZOHO_STATE_CODES: dict[str, str] = {
    "JK": "01",
    "HP": "02",
    "PB": "03",
    "CH": "04",
    "UK": "05",
    "UT": "05",
    "UA": "05",
    "HR": "06",
    "DL": "07",
    "RJ": "08",
    "UP": "09",
    "BR": "10",
    "SK": "11",
    "AR": "12",
    "NL": "13",
    "MN": "14",
    "MZ": "15",
    "TR": "16",
    "ML": "17",
    "AS": "18",
    "WB": "19",
    "JH": "20",
    "OR": "21",
    "OD": "21",
    "CG": "22",
    "CT": "22",
    "MP": "23",
    "GJ": "24",
    "DD": "26",  # Daman and Diu merged into 26 in 2020
    "DN": "26",
    "MH": "27",
    "KA": "29",
    "GA": "30",
    "LD": "31",
    "KL": "32",
    "TN": "33",
    "PY": "34",
    "PD": "34",
    "AN": "35",
    "TS": "36",
    "TG": "36",
    "AP": "37",
    "AD": "37",
    "LA": "38",
    "OT": "97",
}
_ZOHO_BY_STATE_CODE: dict[str, str] = {}
for _alpha, _numeric in ZOHO_STATE_CODES.items():
    _ZOHO_BY_STATE_CODE.setdefault(_numeric, _alpha)


def state_name(code: str) -> str | None:
    return STATE_CODES.get(code)


def state_code_from_name(name: str | None) -> str | None:
    """'Tamil Nadu', ' tamil  nadu ', 'Orissa', 'New Delhi' -> GST code; None when unknown."""
    if not name:
        return None
    return _CODE_BY_NAME.get(_name_key(name))


def state_code_from_zoho(code: str | None) -> str | None:
    """Zoho alphabetic state code ('TN', 'ka') -> GST numeric code; None when unknown."""
    if not code:
        return None
    return ZOHO_STATE_CODES.get(code.strip().upper())


def zoho_code_from_state_code(code: str) -> str | None:
    """GST numeric code -> the alphabetic code Zoho Books uses (first variant)."""
    return _ZOHO_BY_STATE_CODE.get(code)


# --- GSTIN ---------------------------------------------------------------------------------------

_GSTIN_CHARSET = string.digits + string.ascii_uppercase
_PAN_FORMAT = re.compile(r"^[A-Z]{5}[0-9]{4}[A-Z]$")
# The shapes of a GSTIN or UIN, after the GST developer portal's patterns (those of GSTR-1):
# * PAN-based: regular, composition, casual, SEZ (14th character Z, or 1-9/A-J), e-commerce
#   operators collecting TCS (C) and tax deductors (D); the 13th counts registrations per state;
# * TAN-based tax deductors (TDS under section 51): a TAN (4 letters, 5 digits, 1 letter), then D;
# * year, ISO country code and serial: non-resident taxable persons (NR), UN bodies and embassies
#   (UN), other notified persons (ON), and OIDAR providers (OS), always under state code 99.
# Every kind ends with the same mod-36 check character.
_GSTIN_KINDS = (
    re.compile(r"[0-9]{2}(?P<pan>[A-Z]{5}[0-9]{4}[A-Z])[1-9A-Z][1-9A-JZ][0-9A-Z]"),
    re.compile(r"[0-9]{2}[A-Z]{4}[0-9]{5}[A-Z][1-9A-Z]D[0-9A-Z]"),
    re.compile(r"[0-9]{4}[A-Z]{3}[0-9]{5}(?:NR|UN|ON)[0-9A-Z]"),
    re.compile(r"(?P<centre>99)[0-9]{2}[A-Z]{3}[0-9]{5}OS[0-9A-Z]"),
)
# 4th PAN character: the holder's status, as the Income Tax Department assigns it.
PAN_HOLDER_TYPES = {
    "A": "association of persons",
    "B": "body of individuals",
    "C": "company",
    "F": "firm or LLP",
    "G": "government",
    "H": "Hindu undivided family",
    "J": "artificial juridical person",
    "K": "krish (trust)",
    "L": "local authority",
    "P": "person",
    "T": "trust",
}


def gstin_checksum_char(first14: str) -> str:
    """The 15th GSTIN character: GSTN's mod-36 Luhn variant over 0-9A-Z, factors 1,2,1,2,…"""
    if len(first14) != 14:
        raise ValueError(f"need the first 14 GSTIN characters, got {len(first14)}")
    total = 0
    for position, char in enumerate(first14.upper()):
        product = _GSTIN_CHARSET.index(char) * (2 if position % 2 else 1)
        total += product // 36 + product % 36
    return _GSTIN_CHARSET[(36 - total % 36) % 36]


def gstin_problem(gstin: str | None) -> str | None:
    """What is wrong with a GSTIN (or UIN), in words for a person; None when it is valid.

    A wrong check character is reported before a PAN problem: it usually means a typo."""
    if not gstin:
        return "GSTIN is empty"
    match = next((m for kind in _GSTIN_KINDS if (m := kind.fullmatch(gstin))), None)
    if match is None:
        return (
            f"GSTIN {gstin!r} does not have the 15-character format state(2 digits) + PAN(10) "
            "+ entity(1) + 'Z' + checksum(1), nor that of a TDS, non-resident, OIDAR or UIN "
            "registration"
        )
    parts = match.groupdict()
    if not parts.get("centre") and gstin[:2] not in STATE_CODES:  # OIDAR: 99, the Centre
        return f"GSTIN {gstin} starts with unknown state code {gstin[:2]}"
    expected = gstin_checksum_char(gstin[:14])
    if gstin[14] != expected:
        return f"GSTIN {gstin} has checksum character {gstin[14]!r}, expected {expected!r}"
    return _pan_problem(parts["pan"]) if parts.get("pan") else None


def _pan_problem(pan: str) -> str | None:
    if pan[3] not in PAN_HOLDER_TYPES:
        return (
            f"the PAN {pan} inside the GSTIN has holder type {pan[3]!r} (4th character); "
            f"PANs use {', '.join(PAN_HOLDER_TYPES)}"
        )
    if pan[5:9] == "0000":
        return f"the PAN {pan} inside the GSTIN has serial number 0000; serials start at 0001"
    return None


def is_valid_gstin(gstin: str | None) -> bool:
    return gstin_problem(gstin) is None


def pan_from_gstin(gstin: str) -> str:
    return gstin[2:12]


def state_code_of_gstin(gstin: str) -> str:
    return gstin[:2]


def make_gstin(state_code: str, pan: str, entity_number: int = 1) -> str:
    """A valid GSTIN for a PAN registered in a state; entity_number 1-35 (1-9, then A-Z)."""
    if state_code not in STATE_CODES:
        raise ValueError(f"unknown GST state code {state_code!r}")
    if not _PAN_FORMAT.match(pan):
        raise ValueError(f"not a PAN: {pan!r}")
    if not 1 <= entity_number <= 35:
        raise ValueError("entity_number must be between 1 and 35")
    first14 = f"{state_code}{pan}{_GSTIN_CHARSET[entity_number]}Z"
    return first14 + gstin_checksum_char(first14)


def make_pan(rng: random.Random, holder_type: str = "C", name: str | None = None) -> str:
    """A syntactically valid PAN; the 5th letter is the name's initial, as the ITD assigns it."""
    if holder_type not in PAN_HOLDER_TYPES:
        raise ValueError(f"holder_type must be one of {sorted(PAN_HOLDER_TYPES)}")
    letters = string.ascii_uppercase
    initial = name[0].upper() if name and name[0].isalpha() else rng.choice(letters)
    prefix = "".join(rng.choice(letters) for _ in range(3))
    serial = rng.randrange(10000) or 1  # serials start at 0001 (same draws as before: same data)
    return f"{prefix}{holder_type}{initial}{serial:04d}{rng.choice(letters)}"


# --- Tax arithmetic ------------------------------------------------------------------------------

_PAISE = Decimal("0.01")


def round_money(amount: Decimal) -> Decimal:
    """2 dp, half up: how Indian invoices round tax amounts."""
    return amount.quantize(_PAISE, ROUND_HALF_UP)  # positional: a keyword costs 80 ns more


def split_gst(
    taxable: Decimal, rate_percent: Decimal, intra_state: bool
) -> tuple[Decimal, Decimal, Decimal]:
    """(cgst, sgst, igst) on a taxable amount. Intra-state halves the rate per head, so that CGST
    and SGST are always equal (rounding each half, not splitting a rounded total)."""
    rate = Decimal(rate_percent)
    zero = Decimal("0.00")
    if intra_state:
        half = round_money(Decimal(taxable) * rate / 200)
        return half, half, zero
    return zero, zero, round_money(Decimal(taxable) * rate / 100)


def fiscal_year(d: date) -> str:
    """India's financial year (April-March) label, e.g. 2026-01-15 -> '2025-26'."""
    start = d.year if d.month >= 4 else d.year - 1
    return f"{start}-{(start + 1) % 100:02d}"
