"""The process's exit codes (the command line's docstring says what each means)."""

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PORTAL, EXIT_SIP, EXIT_UNDELIVERED = 0, 1, 2, 3, 4, 5
EXIT_LOCKED, EXIT_DATABASE, EXIT_SCHEMA, EXIT_PIPE = 6, 7, 8, 141
