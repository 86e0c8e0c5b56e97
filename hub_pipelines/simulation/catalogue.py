"""The catalogues generated books draw from: where customers are, what they are called, what is
sold (with HSN/SAC and GST rate) and on what terms. Shared by every system's simulator, so the
same seed gives the same business everywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# (GST state code, city, PIN, STD code, weight): weights roughly follow where invoices come from.
CITIES: tuple[tuple[str, str, int, str, int], ...] = (
    ("01", "Srinagar", 190001, "194", 1),
    ("02", "Shimla", 171001, "177", 1),
    ("03", "Ludhiana", 141001, "161", 3),
    ("04", "Chandigarh", 160017, "172", 2),
    ("05", "Dehradun", 248001, "135", 2),
    ("06", "Gurugram", 122001, "124", 6),
    ("07", "New Delhi", 110001, "11", 10),
    ("08", "Jaipur", 302001, "141", 4),
    ("09", "Noida", 201301, "120", 4),
    ("09", "Lucknow", 226001, "522", 3),
    ("10", "Patna", 800001, "612", 2),
    ("11", "Gangtok", 737101, "3592", 1),
    ("12", "Itanagar", 791111, "360", 1),
    ("13", "Kohima", 797001, "370", 1),
    ("14", "Imphal", 795001, "385", 1),
    ("15", "Aizawl", 796001, "389", 1),
    ("16", "Agartala", 799001, "381", 1),
    ("17", "Shillong", 793001, "364", 1),
    ("18", "Guwahati", 781001, "361", 2),
    ("19", "Kolkata", 700001, "33", 7),
    ("20", "Jamshedpur", 831001, "657", 2),
    ("21", "Bhubaneswar", 751001, "674", 2),
    ("22", "Raipur", 492001, "771", 2),
    ("23", "Indore", 452001, "731", 3),
    ("24", "Ahmedabad", 380001, "79", 7),
    ("24", "Surat", 395003, "261", 4),
    ("26", "Silvassa", 396230, "260", 1),
    ("27", "Mumbai", 400001, "22", 12),
    ("27", "Pune", 411001, "20", 7),
    ("29", "Bengaluru", 560001, "80", 10),
    ("29", "Mysuru", 570001, "821", 2),
    ("30", "Panaji", 403001, "832", 1),
    ("31", "Kavaratti", 682555, "4896", 1),
    ("32", "Kochi", 682011, "484", 4),
    ("33", "Chennai", 600002, "44", 9),
    ("33", "Coimbatore", 641001, "422", 4),
    ("34", "Puducherry", 605001, "413", 1),
    ("35", "Port Blair", 744101, "3192", 1),
    ("36", "Hyderabad", 500001, "40", 8),
    ("37", "Visakhapatnam", 530001, "891", 3),
    ("38", "Leh", 194101, "1982", 1),
)
_CITY_WEIGHTS = [city[4] for city in CITIES]

BUSINESS_NAMES = (
    "Sharma", "Gupta", "Patel", "Reddy", "Iyer", "Nair", "Mehta", "Agarwal", "Shah", "Rao",
    "Menon", "Kapoor", "Bansal", "Joshi", "Kulkarni", "Desai", "Chatterjee", "Banerjee", "Pillai",
    "Naidu", "Verma", "Jain", "Mishra", "Sri Lakshmi", "Sri Balaji", "Ganesh", "Shree Ram",
    "Om Sai", "Annapurna", "Kaveri", "Ganga", "Himalaya", "Deccan", "Coromandel", "Malabar",
    "Konark", "Vijaya", "Surya",
)  # fmt: skip
TRADES = (
    "Traders", "Textiles", "Steel", "Electricals", "Enterprises", "Agencies", "Pharma", "Foods",
    "Hardware", "Electronics", "Motors", "Plastics", "Chemicals", "Logistics", "Infotech",
    "Builders", "Paper Mills", "Spices", "Auto Parts", "Furnishings",
)  # fmt: skip
# Legal-form suffix -> PAN holder type (4th PAN character).
LEGAL_FORMS = (
    ("Pvt Ltd", "C"), ("Private Limited", "C"), ("Ltd", "C"), ("LLP", "F"), ("& Co", "F"),
    ("& Sons", "F"), ("", "P"),
)  # fmt: skip
FIRST_NAMES = (
    "Ravi", "Priya", "Arjun", "Ananya", "Vikram", "Lakshmi", "Suresh", "Kavya", "Rahul", "Meera",
    "Amit", "Divya", "Karthik", "Sneha", "Rajesh", "Pooja", "Manoj", "Deepa", "Sanjay", "Asha",
)  # fmt: skip
LAST_NAMES = (
    "Kumar", "Sharma", "Iyer", "Reddy", "Nair", "Patel", "Singh", "Rao", "Das", "Menon", "Joshi",
    "Gupta", "Pillai", "Shah", "Verma",
)  # fmt: skip
STREETS = (
    "MG Road", "Station Road", "Anna Salai", "Linking Road", "Park Street", "Brigade Road",
    "Nehru Nagar", "Industrial Estate", "Gandhi Bazaar", "Ring Road", "Civil Lines", "Market Yard",
)  # fmt: skip
# name, country, city, state, zip, currency, INR exchange rate
OVERSEAS_CUSTOMERS = (
    ("Northwind Trading Inc", "U.S.A", "New York", "NY", "10001", "USD", "83.25"),
    ("Bergmann Handels GmbH", "Germany", "Hamburg", "", "20095", "EUR", "90.10"),
    ("Lion City Imports Pte Ltd", "Singapore", "Singapore", "", "049315", "SGD", "62.40"),
    ("Al Noor General Trading LLC", "United Arab Emirates", "Dubai", "", "00000", "AED", "22.70"),
    ("Thames Retail Ltd", "United Kingdom", "London", "", "EC1A 1BB", "GBP", "105.30"),
)
PAYMENT_TERMS = ((0, "Due on Receipt"), (15, "Net 15"), (30, "Net 30"), (45, "Net 45"))


@dataclass(frozen=True, slots=True, eq=False)  # identity equality: CATALOGUE.index() is hot
class CatalogueItem:
    name: str
    description: str
    hsn_or_sac: str
    product_type: str  # goods | service
    unit: str
    gst_rate: Decimal
    price: Decimal
    max_quantity: int
    fractional: bool = False  # sold in half units (metres, kilograms)


def _item(name, description, hsn, kind, unit, rate, price, max_qty, fractional=False):
    return CatalogueItem(
        name, description, hsn, kind, unit, Decimal(rate), Decimal(price), max_qty, fractional
    )


CATALOGUE: tuple[CatalogueItem, ...] = (
    _item("Basmati Rice 25kg", "Premium aged basmati", "10063020", "goods", "bag", 5, "2150", 40),
    _item("Assam Tea", "CTC tea, loose", "09024020", "goods", "kg", 5, "420", 50, True),
    _item("Cotton Fabric", "Poplin, 58 inch", "52083290", "goods", "m", 5, "180", 200, True),
    _item("Freight Charges", "Road transport (GTA)", "996511", "service", "trip", 5, "3500", 4),
    _item("Printer Paper A4", "75 GSM, 500 sheets", "48025690", "goods", "ream", 12, "280", 60),
    _item("LED Bulb 9W", "Cool daylight B22", "85395000", "goods", "pcs", 12, "99", 300),
    _item("Ayurvedic Tonic", "Chyawanprash 1kg", "30049011", "goods", "pcs", 12, "350", 40),
    _item("Hotel Stay", "Deluxe room per night", "996311", "service", "night", 12, "4500", 6),
    _item("External Hard Drive", "1TB USB 3.0", "84717020", "goods", "pcs", 18, "4200", 20),
    _item("Laptop", "14 inch, 16GB RAM", "84713010", "goods", "pcs", 18, "52000", 10),
    _item("Steel Almirah", "4-door, powder coated", "94032010", "goods", "pcs", 18, "12500", 5),
    _item("Ceramic Floor Tiles", "600x600 mm, box of 4", "69072100", "goods", "box", 18, "640", 80),
    _item(
        "Software Consulting", "Implementation services", "998313", "service", "hrs", 18, "2500", 40
    ),
    _item("Annual Maintenance", "AMC for office IT", "998713", "service", "nos", 18, "18000", 2),
    _item("Mixer Grinder", "750W, 3 jars", "85094010", "goods", "pcs", 18, "3200", 12),
    _item("Cement OPC 53", "50 kg bag", "25232930", "goods", "bag", 28, "410", 200),
    _item("Split Air Conditioner", "1.5 ton, 3 star", "84151010", "goods", "pcs", 28, "38500", 6),
    _item("Car Tyre", "Radial 185/65 R15", "40111010", "goods", "pcs", 28, "5600", 16),
)


# Nil-rated goods (GST 0 %): lines with a zero-amount "Nil Rated" tax, drawn only by a mix.
NIL_RATED_CATALOGUE: tuple[CatalogueItem, ...] = (
    _item("Fresh Vegetables", "Seasonal, loose", "07099990", "goods", "kg", 0, "40", 200, True),
    _item("Wheat Flour", "Unbranded atta, loose", "11010000", "goods", "kg", 0, "34", 300, True),
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())[:24] or "customer"


def unique(name: str, taken: set[str]) -> str:
    """Accounting systems refuse two parties with the same display name, so generated names are
    made unique."""
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name} {counter}"
    taken.add(candidate)
    return candidate
