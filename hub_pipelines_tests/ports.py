"""Loopback ports for servers that tests start at fixed offsets (the demo's simulators)."""

from __future__ import annotations

import random
import socket


def free_port_range(count: int) -> int:
    """A base port with `count` free ports from it, below Linux's ephemeral range (32768-60999)
    so that no outgoing connection takes one of them meanwhile."""
    for _ in range(100):
        base = random.randrange(20_000, 32_000)  # noqa: S311 - not a secret
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports found")


def _bindable(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True
