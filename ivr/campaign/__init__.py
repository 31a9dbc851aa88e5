"""Orchestration of a campaign night: import, dial, run calls, deliver ratings, retention."""
