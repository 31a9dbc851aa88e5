"""ivr-rating: phones citizens after their request is closed and asks if they are satisfied."""

__version__ = "0.1.0"
