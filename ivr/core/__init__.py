"""The pure core: call flow, policy, call windows, pacing, intake, settings, errors, clock.

Nothing here does I/O or imports an edge (portal, SIP, storage, console, scheduler);
tests/test_architecture.py checks it.
"""
