"""The default Zoho Books organisation of `hub simulate zoho_books`, apart from the simulator so
that `hub`'s argument parser (which takes its defaults from here) does not import the whole
simulator on every command. (`hub demo` serves organisations of its own: `demo.plan`.)"""

# Real Zoho allows 100 requests/minute; the default raises the limit to finish in seconds
# (`--requests-per-minute 100` for the real pace; a tenant reaching it needs the same
# `requests_per_minute`). Port 8099: the demo's simulators hold 8090-8096.
DEMO_SIMULATOR = {
    "port": 8099,
    "data": {"customers": 200, "invoices": 1000, "lines_per_invoice": 3, "seed": 42},
    "limits": {"requests_per_minute": 30_000, "daily_limit": 10**7},
}
# Not a Zoho URL: the simulator's own description (its organisation, credentials and rate), for
# a tool that registers a tenant reaching an already running simulator.
SIMULATOR_INFO_PATH = "/__simulator__"
