"""`python -m bench.tally_file`: a large Tally export file imported through the file drop's path
(ExportFile → loader → warehouse, through Dagster), with the peak memory and the time per size.

The file is written as Tally writes a Day Book export (UTF-16 LE with a BOM, CRLF, masters first,
then one TALLYMESSAGE per voucher), so the reader streams exactly what an office drops. Each size
is imported in a fresh process whose peak resident memory (VmHWM) is what the figure shows:
a reader that held the document would grow with the file; a streaming one stays flat. Time should
grow linearly with size.

    python -m bench.tally_file                 # 20, 100 and 200 MB
    python -m bench.tally_file --sizes 5,10    # quicker
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

COMPANY = "Bench Traders"
PARTIES = 50
HEAD = """<ENVELOPE>
 <HEADER><TALLYREQUEST>Import Data</TALLYREQUEST></HEADER>
 <BODY><IMPORTDATA>
  <REQUESTDESC><REPORTNAME>Day Book</REPORTNAME>
   <STATICVARIABLES><SVCURRENTCOMPANY>{company}</SVCURRENTCOMPANY></STATICVARIABLES>
  </REQUESTDESC>
  <REQUESTDATA>
"""
TAIL = """  </REQUESTDATA>
 </IMPORTDATA></BODY>
</ENVELOPE>
"""
MASTERS = """   <TALLYMESSAGE xmlns:UDF="TallyUDF">
    <GROUP NAME="Sundry Debtors" RESERVEDNAME="Sundry Debtors"><GUID>{prefix}-00000001</GUID>
     <PARENT>&#4; Primary</PARENT><ALTERID> 1</ALTERID></GROUP>
    <VOUCHERTYPE NAME="Sales" RESERVEDNAME="Sales"><GUID>{prefix}-00000002</GUID>
     <PARENT>Sales</PARENT><ALTERID> 2</ALTERID></VOUCHERTYPE>
    <LEDGER NAME="CGST" RESERVEDNAME=""><GUID>{prefix}-00000003</GUID>
     <PARENT>Duties &amp; Taxes</PARENT>
     <GSTDUTYHEAD>CGST</GSTDUTYHEAD><ALTERID> 3</ALTERID></LEDGER>
    <LEDGER NAME="SGST" RESERVEDNAME=""><GUID>{prefix}-00000004</GUID>
     <PARENT>Duties &amp; Taxes</PARENT>
     <GSTDUTYHEAD>SGST/UTGST</GSTDUTYHEAD><ALTERID> 4</ALTERID></LEDGER>
   </TALLYMESSAGE>
"""
PARTY = """   <TALLYMESSAGE xmlns:UDF="TallyUDF">
    <LEDGER NAME="Party {n}" RESERVEDNAME=""><GUID>{prefix}-{guid:08x}</GUID>
     <PARENT>Sundry Debtors</PARENT><ALTERID> {guid}</ALTERID>
     <LEDGSTREGDETAILS.LIST><GSTREGISTRATIONTYPE>Regular</GSTREGISTRATIONTYPE>
      <PLACEOFSUPPLY>Maharashtra</PLACEOFSUPPLY><GSTIN>27AAPFU0939F1ZV</GSTIN></LEDGSTREGDETAILS.LIST>
    </LEDGER>
   </TALLYMESSAGE>
"""
VOUCHER = """   <TALLYMESSAGE xmlns:UDF="TallyUDF">
    <VOUCHER REMOTEID="{prefix}-{guid:08x}" VCHTYPE="Sales" ACTION="Create">
     <DATE>{date}</DATE><GUID>{prefix}-{guid:08x}</GUID>
     <PLACEOFSUPPLY>Maharashtra</PLACEOFSUPPLY><CMPGSTSTATE>Maharashtra</CMPGSTSTATE>
     <VOUCHERTYPENAME>Sales</VOUCHERTYPENAME><PARTYLEDGERNAME>Party {party}</PARTYLEDGERNAME>
     <VOUCHERNUMBER>{number}</VOUCHERNUMBER><ISCANCELLED>No</ISCANCELLED><ISOPTIONAL>No</ISOPTIONAL>
     <ALTERID> {guid}</ALTERID>
     <ALLINVENTORYENTRIES.LIST>
      <STOCKITEMNAME>Cotton Fabric</STOCKITEMNAME><GSTHSNNAME>5208</GSTHSNNAME>
      <RATE>100.00/Mtr</RATE><AMOUNT>{taxable}</AMOUNT><BILLEDQTY> {qty} Mtr</BILLEDQTY>
      <ACCOUNTINGALLOCATIONS.LIST><LEDGERNAME>Sales GST 18%</LEDGERNAME>
       <AMOUNT>{taxable}</AMOUNT></ACCOUNTINGALLOCATIONS.LIST>
      <RATEDETAILS.LIST><GSTRATEDUTYHEAD>CGST</GSTRATEDUTYHEAD><GSTRATE> 9</GSTRATE>
      </RATEDETAILS.LIST>
      <RATEDETAILS.LIST><GSTRATEDUTYHEAD>SGST/UTGST</GSTRATEDUTYHEAD><GSTRATE> 9</GSTRATE>
      </RATEDETAILS.LIST>
     </ALLINVENTORYENTRIES.LIST>
     <LEDGERENTRIES.LIST><LEDGERNAME>Party {party}</LEDGERNAME><ISPARTYLEDGER>Yes</ISPARTYLEDGER>
      <AMOUNT>-{total}</AMOUNT></LEDGERENTRIES.LIST>
     <LEDGERENTRIES.LIST><LEDGERNAME>CGST</LEDGERNAME><AMOUNT>{tax}</AMOUNT></LEDGERENTRIES.LIST>
     <LEDGERENTRIES.LIST><LEDGERNAME>SGST</LEDGERNAME><AMOUNT>{tax}</AMOUNT></LEDGERENTRIES.LIST>
    </VOUCHER>
   </TALLYMESSAGE>
"""


def write_export(path: Path, megabytes: float) -> int:
    """A Day Book export of about `megabytes` MB; returns the number of sales vouchers."""
    prefix = str(uuid.uuid4())
    target = megabytes * 1_000_000
    vouchers = 0
    with path.open("w", encoding="utf-16", newline="\r\n") as out:  # utf-16 writes the BOM
        out.write(HEAD.format(company=COMPANY) + MASTERS.format(prefix=prefix))
        for n in range(1, PARTIES + 1):
            out.write(PARTY.format(n=n, prefix=prefix, guid=0x100 + n))
        while out.tell() < target:
            vouchers += 1
            qty = 1 + vouchers % 40
            taxable = Decimal(qty * 100)
            tax = taxable * Decimal("0.09")
            out.write(
                VOUCHER.format(
                    prefix=prefix,
                    guid=0x10000 + vouchers,
                    date=f"2025{1 + vouchers % 12:02d}{1 + vouchers % 28:02d}",
                    party=1 + vouchers % PARTIES,
                    number=vouchers,
                    qty=qty,
                    taxable=f"{taxable:.2f}",
                    tax=f"{tax:.2f}",
                    total=f"{taxable + 2 * tax:.2f}",
                )
            )
        out.write(TAIL)
    return vouchers


def import_one(path: Path) -> None:
    """In a fresh process: register a file-drop tenant on a scratch database, import the file
    through Dagster, print the counts."""
    import dagster as dg

    from bench.database import count, create_scratch_database, drop_database
    from bench.measure import peak_megabytes
    from hub_pipelines.imports.local import import_partition
    from hub_pipelines.tenants.registry import TenantRegistry
    from hub_pipelines.vault import KEY_VARIABLE, Vault, generate_key
    from hub_pipelines.warehouse import db

    server, url = create_scratch_database()
    os.environ["HUB_DATABASE_URL"] = url
    db.database_url.cache_clear()  # create_scratch_database asked for the server's URL first
    os.environ[KEY_VARIABLE] = generate_key()  # a scratch key for the scratch tenant
    TenantRegistry(Vault.from_env()).add(
        "bench", "tally", {"connection_config": {"file_drop": True}, "sync_config": {}}
    )
    with dg.instance_for_test() as instance:
        result = import_partition(
            instance, "bench", "tally", ["customers", "invoices"], landed_file=str(path)
        )
    invoices = count(url, "SELECT count(*) FROM accounting.invoices")
    drop_database(server, url)
    print(f"success={result.success} invoices={invoices}")
    print(f"peak_mb={peak_megabytes():.0f}")


def measure(path: Path) -> tuple[float, float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", "bench.tally_file", "--one", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"import of {path} failed:\n{done.stdout}\n{done.stderr}")
    *_, outcome, peak = done.stdout.strip().splitlines()
    return seconds, float(peak.removeprefix("peak_mb=")), outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tally_file")
    parser.add_argument("--sizes", default="20,100,200", help="file sizes in MB, ascending")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return import_one(args.one)
    print(
        f"{'file MB':>8} {'vouchers':>9} {'write s':>8} {'import s':>9} {'MB/s':>6} "
        f"{'peak RSS MB':>12}  result"
    )
    with tempfile.TemporaryDirectory() as folder:
        for size in (float(s) for s in args.sizes.split(",")):
            path = Path(folder) / f"daybook_{size:g}mb.xml"
            started = time.perf_counter()
            vouchers = write_export(path, size)
            written = time.perf_counter() - started
            seconds, peak, result = measure(path)
            mb = path.stat().st_size / 1e6
            print(
                f"{mb:8.1f} {vouchers:9,} {written:8.1f} {seconds:9.1f} {mb / seconds:6.2f} "
                f"{peak:12.0f}  {result}"
            )
            path.unlink()


if __name__ == "__main__":
    main()
