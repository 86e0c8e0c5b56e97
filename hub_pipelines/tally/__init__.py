"""TallyPrime / Tally.ERP 9: the XML-over-HTTP protocol and its TDL (`protocol`), the mapping into
canonical records (`mapping`), export files (`export_file`), the live connector (`connector`) and
the simulator (`simulator`). See docs/connectors/tally.md."""
