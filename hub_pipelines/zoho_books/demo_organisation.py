"""The demo's Zoho Books organisation, apart from the simulator so that `hub`'s argument parser
(which takes its defaults from here) does not import the whole simulator on every command."""

# The demo's organisation, served by `hub demo` and, by default, by `hub simulate zoho_books`, so
# the demo tenant works with either in any order. Real Zoho allows 100 requests/minute; the demo
# raises the limit on both sides to finish in seconds (`--requests-per-minute 100` for the real
# pace). The connector's token bucket and the simulator's limiter still apply.
DEMO_SIMULATOR = {
    "port": 8091,
    "data": {"customers": 200, "invoices": 1000, "lines_per_invoice": 3, "seed": 42},
    "limits": {"requests_per_minute": 30_000, "daily_limit": 10**7},
}
# Not a Zoho URL: the simulator's own description (its organisation, credentials and rate), so
# `hub demo` can register a tenant that reaches an already running simulator.
SIMULATOR_INFO_PATH = "/__simulator__"
