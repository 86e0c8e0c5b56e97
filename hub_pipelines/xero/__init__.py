"""Xero Accounting API 2.0: protocol knowledge (`protocol`), pure mapping into the canonical
records (`mapping`) and webhook parsing (`webhooks`). See docs/connectors/xero.md."""
