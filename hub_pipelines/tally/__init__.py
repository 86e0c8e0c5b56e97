"""TallyPrime / Tally.ERP 9 over XML on port 9000: the protocol and its TDL (`protocol`), the
mapping into canonical records (`mapping`), the connector and the simulator. See
docs/connectors/tally.md."""
