import random
import re
from datetime import date
from decimal import Decimal

import pytest

from hub_pipelines import gst

# Public GSTINs that pass GSTN's checksum (27AAPFU0939F1ZV is the usual documentation example).
VALID_GSTINS = ["27AAPFU0939F1ZV", "29AAGCB7383J1Z4", "33AAACH7409R1Z8", "32AAACV5492Q1ZR"]


@pytest.mark.parametrize("gstin", VALID_GSTINS)
def test_known_public_gstins_validate(gstin):
    assert gst.gstin_checksum_char(gstin[:14]) == gstin[14]
    assert gst.is_valid_gstin(gstin)
    assert gst.gstin_problem(gstin) is None


def test_documentation_examples_do_not_pass_the_checksum():
    # Zoho's OpenAPI example GSTIN is only a placeholder: its checksum character should be 'C'.
    assert gst.gstin_checksum_char("22AAAAA0000A1Z") == "C"
    assert not gst.is_valid_gstin("22AAAAA0000A1Z5")
    # Same for the synthetic example in the Zoho fact sheet.
    assert "expected '7'" in gst.gstin_problem("33ABCDE1234F1Z5")


# Every kind of registration the GST portal issues; all carry the mod-36 check character.
# The first two are real registrations; the others are built to each kind's rules.
@pytest.mark.parametrize(
    "gstin",
    [
        "9917IRL29003OSG",  # non-resident OIDAR provider: year, country, serial, OS; state 99
        "27PNEA06819B1DE",  # tax deductor registered on its TAN (4 letters, 5 digits, 1 letter)
        "29AAGCB7383J1DD",  # tax deductor registered on its PAN
        "07AAACF1234A1CS",  # e-commerce operator collecting TCS
        "0718USA00001NR8",  # non-resident taxable person
        "0717AUS12345UNN",  # UN body or embassy (UIN)
        "0722USA00057ON9",  # other notified person (UIN)
        "27AAPFU0939F12Q",  # a 14th character other than Z, which the portal's pattern allows
        "38AAPFU0939F1ZS",  # Ladakh
        "97AAPFU0939F1ZO",  # Other Territory
        "07AAAGM0289C1ZL",  # PAN holder type G (government)
        "27AAAHA1234B1Z8",  # PAN holder type H (Hindu undivided family)
        "06AABTS1234Q1Z9",  # PAN holder type T (trust)
    ],
)
def test_valid_registrations_of_every_kind_are_accepted(gstin):
    assert gst.gstin_problem(gstin) is None
    assert gst.is_valid_gstin(gstin)


@pytest.mark.parametrize(
    ("gstin", "words"),
    [
        (None, "empty"),
        ("27aapfu0939f1zv", "format"),
        ("27AAPFU0939F1Z", "format"),
        ("27AAPFU0939F0ZV", "format"),  # entity number 0 is not issued
        ("27AAPFU0939F1KP", "format"),  # 14th character K: no kind uses it
        ("27PNEA06819B1Z5", "format"),  # TAN-based registrations are tax deductors' (D) only
        ("0717IRL29003OST", "format"),  # OIDAR registrations are under state code 99 only
        ("00AAPFU0939F1ZV", "unknown state code 00"),
        ("99AAPFU0939F1ZK", "unknown state code 99"),  # 99 is OIDAR's, not a state
        ("0017USA12345NR2", "unknown state code 00"),
        ("27AAPFU0939F1ZW", "expected 'V'"),
        ("9917IRL29003OSH", "expected 'G'"),
        ("27PNEA06819B1DF", "expected 'E'"),
        ("27AADXU0939F1Z6", "holder type 'X'"),  # checksum right, PAN holder type wrong
        ("33ABCDE1234F1Z7", "holder type 'D'"),  # the Zoho fact sheet's example, checksum fixed
        ("27AAPFU0000F1ZJ", "serial number 0000"),  # PAN serials run 0001-9999
    ],
)
def test_gstin_problem_names_what_is_wrong(gstin, words):
    assert words in gst.gstin_problem(gstin)
    assert not gst.is_valid_gstin(gstin)


def test_make_gstin_round_trips_state_and_pan():
    rng = random.Random(7)
    for state in gst.STATE_CODES:
        pan = gst.make_pan(rng, "C", "Acme")
        gstin = gst.make_gstin(state, pan, entity_number=rng.randint(1, 35))
        assert gst.is_valid_gstin(gstin), gstin
        assert gst.state_code_of_gstin(gstin) == state
        assert gst.pan_from_gstin(gstin) == pan


def test_make_gstin_entity_numbers_beyond_nine_are_letters():
    assert gst.make_gstin("29", "AAGCB7383J", 10)[12] == "A"
    with pytest.raises(ValueError):
        gst.make_gstin("99", "AAGCB7383J")
    with pytest.raises(ValueError):
        gst.make_gstin("29", "not-a-pan")


@pytest.mark.parametrize("holder", ["C", "P", "F"])
def test_make_pan_is_syntactically_valid(holder):
    rng = random.Random(1)
    pans = {gst.make_pan(rng, holder, "Sharma Traders") for _ in range(50)}
    for pan in pans:
        assert re.fullmatch(r"[A-Z]{5}[0-9]{4}[A-Z]", pan)
        assert pan[3] == holder and pan[4] == "S"
    assert len(pans) > 45


def test_make_pan_never_issues_serial_0000():
    class ZeroSerial(random.Random):
        def randrange(self, *args):
            return 0

    pan = gst.make_pan(ZeroSerial(1), "C", "Acme")
    assert pan[5:9] == "0001" and gst.is_valid_gstin(gst.make_gstin("29", pan))


def test_state_table():
    assert gst.STATE_CODES["26"] == "Dadra and Nagar Haveli and Daman and Diu"
    assert gst.STATE_CODES["38"] == "Ladakh"
    assert gst.STATE_CODES["97"] == "Other Territory"
    assert set(gst.STATE_CODES) >= {f"{n:02d}" for n in range(1, 39)}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Tamil Nadu", "33"),
        ("  tamil   NADU ", "33"),
        ("Orissa", "21"),
        ("Odisha", "21"),
        ("Pondicherry", "34"),
        ("Delhi", "07"),
        ("New Delhi", "07"),
        ("Andhra Pradesh", "37"),
        ("Jammu & Kashmir", "01"),
        ("Dadra and Nagar Haveli and Daman and Diu", "26"),
        ("Atlantis", None),
        ("", None),
        (None, None),
    ],
)
def test_state_code_from_name(name, code):
    assert gst.state_code_from_name(name) == code


ZOHO_CODES = {
    "TN": "33", "KA": "29", "MH": "27", "DL": "07", "GJ": "24", "KL": "32", "AP": "37",
    "TS": "36", "TG": "36", "UP": "09", "WB": "19", "RJ": "08", "HR": "06", "PB": "03",
    "MP": "23", "OR": "21", "OD": "21", "GA": "30", "CG": "22", "CT": "22", "JH": "20",
    "UK": "05", "UT": "05", "HP": "02", "JK": "01", "AS": "18", "BR": "10", "CH": "04",
    "PY": "34", "AN": "35", "LD": "31", "LA": "38", "DN": "26", "DD": "26", "SK": "11",
    "MN": "14", "ML": "17", "MZ": "15", "NL": "13", "TR": "16", "AR": "12",
}  # fmt: skip


def test_state_code_from_zoho_covers_every_state():
    for alpha, numeric in ZOHO_CODES.items():
        assert gst.state_code_from_zoho(alpha) == numeric, alpha
    assert gst.state_code_from_zoho("tn") == "33"
    assert gst.state_code_from_zoho("XX") is None
    assert gst.state_code_from_zoho(None) is None
    covered = set(ZOHO_CODES.values())
    assert covered >= set(gst.STATE_CODES) - {"25", "28", "97"}


def test_zoho_code_round_trip():
    for code in set(gst.STATE_CODES) - {"25", "28"}:
        assert gst.state_code_from_zoho(gst.zoho_code_from_state_code(code)) == code


@pytest.mark.parametrize(
    ("taxable", "rate", "intra", "expected"),
    [
        ("1000", "18", True, ("90.00", "90.00", "0.00")),
        ("1000", "18", False, ("0.00", "0.00", "180.00")),
        ("100.05", "5", True, ("2.50", "2.50", "0.00")),  # 2.50125 each
        ("100.05", "5", False, ("0.00", "0.00", "5.00")),  # 5.0025
        ("0.10", "5", False, ("0.00", "0.00", "0.01")),  # 0.005 rounds half up
        ("10.10", "5", True, ("0.25", "0.25", "0.00")),  # 0.2525 each
        ("999.99", "28", True, ("140.00", "140.00", "0.00")),
    ],
)
def test_split_gst(taxable, rate, intra, expected):
    result = gst.split_gst(Decimal(taxable), Decimal(rate), intra)
    assert result == tuple(Decimal(x) for x in expected)
    assert all(isinstance(x, Decimal) and x.as_tuple().exponent == -2 for x in result)


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 3, 31), "2025-26"),
        (date(2026, 4, 1), "2026-27"),
        (date(2025, 1, 15), "2024-25"),
        (date(1999, 4, 1), "1999-00"),
    ],
)
def test_fiscal_year(day, label):
    assert gst.fiscal_year(day) == label
