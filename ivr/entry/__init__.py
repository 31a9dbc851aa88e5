"""Entry points: the command line, the composition root (app), operator commands, logs, metrics."""
