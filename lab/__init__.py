"""The test and demo lab: local SIP peers, the portal emulator, sample data, the demo.

Used by tests/, bench/ and scripts/demo.sh; never imported by the product and not in its wheel.
"""
