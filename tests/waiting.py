"""Polling for what real processes do in their own time (pods starting, logs being written)."""

import time


def wait_for(check, timeout: float = 10.0):
    """check()'s first truthy result, polled every 50 ms until timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")
