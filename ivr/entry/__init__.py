"""Entry points: the command line (cli), the composition root (app), config check, logging setup.

Nothing imports this package; it imports the rest.
"""
