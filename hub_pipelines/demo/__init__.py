"""`hub demo`: three tenants over the five systems, imported through Dagster (see `run`)."""
