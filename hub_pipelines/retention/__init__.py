"""Retention of the audit trail: old sync logs and resolved errors move to archive tables, and
leave the archive for good later (`retention_job`, scheduled daily by `retention_daily`)."""
