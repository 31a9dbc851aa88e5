"""The long-running service: APScheduler 3 jobs around the dialer (``ivr-rating run``)."""
