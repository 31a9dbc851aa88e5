"""SIP side of ivr-rating: a small interface (``api``) and its pyVoIP 1.6.8 implementation."""
