"""QuickBooks Online Accounting API v3: protocol knowledge (`protocol`), pure mapping into the
canonical records (`mapping`) and webhook parsing (`webhooks`).
See docs/connectors/quickbooks.md."""
