"""The tolerant streaming XML reader: encodings, what real Tally output carries (`&#4;`, raw
control bytes, undeclared `UDF:` prefixes), chunks split anywhere, truly broken XML, and memory
that holds one object, not the document."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from hub_pipelines.connectors.xml import (
    XmlError,
    as_dict,
    as_dicts,
    objects,
    root_tag,
    text,
    texts,
)
from hub_pipelines_tests.own_interpreter import traced_peak

# A Tally-like document with every quirk: a declaration that says UTF-16, the &#4; marker in
# both spellings, raw U+0004/U+0005, a forbidden reference in an attribute, a ₹ and an `&amp;`,
# UDF: tags declared on one message and undeclared in the other.
DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-16"?>\r\n<ENVELOPE><HEADER><TALLYREQUEST>Import Data'
    "</TALLYREQUEST></HEADER><BODY><DATA>"
    '<TALLYMESSAGE xmlns:UDF="TallyUDF"><LEDGER NAME="L&#4; Artisan &amp; Co">'
    "<PARENT>&#4; Primary</PARENT><GSTTYPE>&#x4; Not Applicable</GSTTYPE>"
    '<ADDRESS.LIST TYPE="String"><ADDRESS>Plot 7,\x05 Sector\x04 37</ADDRESS>'
    "<ADDRESS>Gurgaon</ADDRESS></ADDRESS.LIST><CURRENCYNAME>\u20b9</CURRENCYNAME>"
    '<UDF:PKT.LIST DESC="`Pkt`"><UDF:PKT> 1</UDF:PKT></UDF:PKT.LIST></LEDGER></TALLYMESSAGE>'
    "<TALLYMESSAGE><VOUCHER><GUID>v-1</GUID><UDF:NOTE>undeclared</UDF:NOTE><AMOUNT>-1.00</AMOUNT>"
    "<EMPTY.LIST>   </EMPTY.LIST><BLANK/></VOUCHER></TALLYMESSAGE></DATA></BODY></ENVELOPE>"
)
EXPECTED = [
    (
        "LEDGER",
        {
            "@NAME": "L Artisan & Co",
            "PARENT": " Primary",
            "GSTTYPE": " Not Applicable",
            "ADDRESS.LIST": {"@TYPE": "String", "ADDRESS": ["Plot 7, Sector 37", "Gurgaon"]},
            "CURRENCYNAME": "\u20b9",
            "UDF:PKT.LIST": {"@DESC": "`Pkt`", "UDF:PKT": " 1"},
        },
    ),
    ("VOUCHER", {"GUID": "v-1", "UDF:NOTE": "undeclared", "AMOUNT": "-1.00"}),
]


def read(source, tags=("LEDGER", "VOUCHER"), **options) -> list[tuple[str, dict]]:
    return [(element.tag, as_dict(element)) for element in objects(source, tags, **options)]


def utf16_with_bom(document: str = DOCUMENT) -> bytes:
    return b"\xff\xfe" + document.encode("utf-16-le")


@pytest.mark.parametrize(
    "data",
    [
        utf16_with_bom(),
        b"\xfe\xff" + DOCUMENT.encode("utf-16-be"),
        DOCUMENT.encode("utf-16-le"),  # no BOM: told by the NUL after `<`
        DOCUMENT.encode("utf-8"),  # re-encoded, still declaring UTF-16
        b"\xef\xbb\xbf" + DOCUMENT.encode("utf-8"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf16le-no-bom", "utf8-declaring-utf16", "utf8-bom"],
)
def test_every_encoding_reads_the_same_objects(data):
    assert read(data) == EXPECTED


def test_sources_bytes_file_and_chunks():
    data = utf16_with_bom()
    assert read(io.BytesIO(data)) == EXPECTED
    assert read(iter([data[:1], b"", data[1:7], data[7:]])) == EXPECTED


def test_encoding_from_declaration_then_argument_then_utf8():
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><A><X>caf\xe9</X></A>'.encode("latin-1")
    assert read(latin, ("X",)) == [("X", {"#text": "caf\xe9"})]
    bare = "<A><X>caf\xe9</X></A>".encode("cp1252")
    assert read(bare, ("X",), encoding="cp1252") == [("X", {"#text": "caf\xe9"})]
    assert read(bare, ("X",)) == [("X", {"#text": "caf\ufffd"})]  # not UTF-8: replaced, read on


@pytest.mark.parametrize("encode", [utf16_with_bom, lambda d: d.encode("utf-8")], ids=["16", "8"])
def test_chunks_split_at_every_offset(encode):
    data = encode(DOCUMENT)
    for cut in range(len(data) + 1):
        assert read([data[:cut], data[cut:]]) == EXPECTED, cut
    for size in (1, 2, 3, 5):
        assert read(data[i : i + size] for i in range(0, len(data), size)) == EXPECTED, size


def test_forbidden_references_go_and_allowed_ones_stay():
    data = b"<A><X>a&#0;&#x1F;&#xFFFE;&#xD800;&#9;&#10;&#x41;&#8377;b</X></A>"
    assert read(data, ("X",)) == [("X", {"#text": "a\t\nA\u20b9b"})]


def test_tags_match_without_namespace_or_prefix():
    rowset = (
        b"<xml xmlns:s='uuid:BDC6E3F0' xmlns:rs='urn:schemas-microsoft-com:rowset' "
        b"xmlns:z='#RowsetSchema'><rs:data><z:row Code='4021' Name='O&#39;Brien'/>"
        b"<z:row Code='4022'/></rs:data></xml>"
    )
    rows = read(rowset, ("row",))
    assert rows == [
        ("{#RowsetSchema}row", {"@Code": "4021", "@Name": "O'Brien"}),
        ("{#RowsetSchema}row", {"@Code": "4022"}),
    ]


def test_text_helpers():
    document = b"<LEDGER><A> x </A><B/><C.LIST><C> 1 </C><C> </C><C>2</C></C.LIST></LEDGER>"
    ledger = next(objects(document, "LEDGER"))  # one tag may be given as a string
    assert text(ledger, "A") == "x"
    assert text(ledger, "B") is None and text(ledger, "Z") is None
    assert texts(ledger, "C.LIST/C") == ["1", "2"]


def test_text_by_tag_finds_a_child_only_as_find_does():
    document = (
        b"<V><X.LIST><GUID>inner</GUID></X.LIST><X.LIST><N>2</N></X.LIST><GUID> g </GUID></V>"
    )
    voucher = next(objects(document, "V"))
    assert text(voucher, "GUID") == "g"  # the child, not the grandchild before it
    assert text(voucher, "X.LIST") is None  # the first X.LIST has no text of its own
    assert text(voucher, "X.LIST/GUID") == "inner" and text(voucher, ".//N") == "2"
    assert text(next(objects(document, "X.LIST")), "N") is None


def test_a_record_and_its_parts_are_read_in_one_walk():
    document = (
        b"<V><GUID>v</GUID><ITEM.LIST><NAME>a</NAME><RATE.LIST><R>5</R></RATE.LIST></ITEM.LIST>"
        b"<ITEM.LIST> </ITEM.LIST><ITEM.LIST><NAME>b</NAME></ITEM.LIST></V>"
    )
    voucher = next(objects(document, "V"))
    first, empty, last = voucher.findall("ITEM.LIST")
    rates = first.find("RATE.LIST")
    outside = next(objects(b"<ITEM.LIST><NAME>c</NAME></ITEM.LIST>", "ITEM.LIST"))
    raw, parts = as_dicts(voucher, [first, empty, last, rates, outside])
    assert raw == as_dict(voucher)
    assert raw["ITEM.LIST"] == [{"NAME": "a", "RATE.LIST": {"R": "5"}}, {"NAME": "b"}]
    assert parts[first] is raw["ITEM.LIST"][0] and parts[last] is raw["ITEM.LIST"][1]
    assert parts[rates] == {"R": "5"} and parts[empty] == {}  # empty: left out of the record
    assert parts[outside] == {"NAME": "c"}  # not inside the record: read on its own


def test_root_tag_reads_only_the_start():
    def endless() -> Iterator[bytes]:
        yield b"<ENVELOPE><HEADER/>"
        while True:
            yield b"<X>" * 1000

    assert root_tag(endless()) == "ENVELOPE"
    assert root_tag(utf16_with_bom()) == "ENVELOPE"


@pytest.mark.parametrize(
    ("data", "position", "problem"),
    [
        (b"<A>\n<B></C></A>", "line 2, column", "mismatch"),
        (b"Name,GSTIN\nAcme,27AAAAA0000A1Z5\n", "line 1, column 1", "Start tag expected"),
        (b"", "line 1, column 1", ""),
        (b"<A><X>1</X>", "line 1, column", "end of data"),
        (b"<A/><B/>", "line 1, column", "Extra content"),
        (b"<A>AT&T</A>", "line 1, column", ""),
        (b'<?xml version="1.0" encoding="klingon"?><A/>', "line 1, column 1", "klingon"),
    ],
    ids=["mismatch", "csv", "empty", "unclosed", "two-roots", "bare-ampersand", "encoding"],
)
def test_truly_broken_xml_names_the_position(data, position, problem):
    with pytest.raises(XmlError, match=position) as raised:
        read(data, ("X", "A", "B"))
    assert problem in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_an_element_is_cleared_once_the_next_is_asked_for():
    found = objects(b"<R><V><N>1</N></V><V><N>2</N></V><V><N>3</N></V></R>", ("V",))
    first = next(found)
    assert text(first, "N") == "1"
    second = next(found)
    assert len(first) == 0 and text(second, "N") == "2"
    third = next(found)
    assert third.getprevious() is second and second.getprevious() is None  # first: gone


def generated_export(vouchers: int) -> Iterator[bytes]:
    """A Day Book of `vouchers` similar vouchers (about 2 KB each), in UTF-16, chunk by chunk:
    the test never holds the document either."""
    yield b"\xff\xfe" + "<ENVELOPE><BODY><DATA>".encode("utf-16-le")
    for number in range(vouchers):
        voucher = (
            '<TALLYMESSAGE xmlns:UDF="TallyUDF"><VOUCHER VCHTYPE="Sales">'
            f"<GUID>guid-{number}</GUID><VOUCHERNUMBER>{number}</VOUCHERNUMBER>"
            "<PARTYLEDGERNAME>Acme&#4; Traders</PARTYLEDGERNAME>"
            + "<LEDGERENTRIES.LIST><LEDGERNAME>Sales</LEDGERNAME><AMOUNT>100.00</AMOUNT>"
            "<UDF:X.LIST><UDF:X> 1</UDF:X></UDF:X.LIST></LEDGERENTRIES.LIST>"
            * 10
            + "</VOUCHER></TALLYMESSAGE>"
        )
        yield voucher.encode("utf-16-le")
    yield "</DATA></BODY></ENVELOPE>".encode("utf-16-le")


def ledger_between(vouchers: int) -> Iterator[bytes]:
    """A ledger, `vouchers` vouchers, a ledger: the vouchers are what lies between two matches."""
    ledger = '<TALLYMESSAGE><LEDGER NAME="L"><GUID>l-{}</GUID></LEDGER></TALLYMESSAGE>'
    export = generated_export(vouchers)
    yield next(export) + ledger.format(1).encode("utf-16-le")
    for chunk in export:
        if chunk.startswith("</DATA>".encode("utf-16-le")):
            yield ledger.format(2).encode("utf-16-le")
        yield chunk


def test_what_lies_between_the_objects_wanted_is_dropped_as_it_is_read():
    sizes = []
    for ledger in objects(ledger_between(5_000), ("LEDGER",)):
        sizes.append(sum(1 for _ in ledger.getroottree().getroot().iter()))
    # At most what one read of the parser built: not the 5,000 vouchers (250,000 elements) read past
    assert len(sizes) == 2 and max(sizes) < 500, sizes


STREAMING = """
from hub_pipelines.connectors.xml import objects, text
from hub_pipelines_tests.connectors.test_xml import generated_export
"""
STREAM_EXPORT = """
result.update(count=0, largest_tree=0, parties=[])
for voucher in objects(generated_export(int(sys.argv[1])), ("VOUCHER",)):
    result["count"] += 1
    if result["count"] % 1000 == 0:  # what lxml holds (outside tracemalloc's view): one voucher
        result["parties"].append(text(voucher, "PARTYLEDGERNAME"))
        root = voucher.getroottree().getroot()
        result["largest_tree"] = max(result["largest_tree"], sum(1 for _ in root.iter()))
"""


def test_a_50_mb_document_streams_in_bounded_memory():
    vouchers = 25_000
    size = sum(len(chunk) for chunk in generated_export(vouchers))
    assert size > 45_000_000
    measured = traced_peak(STREAMING, STREAM_EXPORT, str(vouchers))
    assert measured["count"] == vouchers
    assert set(measured["parties"]) == {"Acme Traders"}
    assert measured["peak"] < size / 10, f"peak {measured['peak']:,} B for a {size:,} B document"
    assert measured["largest_tree"] < 100, measured["largest_tree"]
