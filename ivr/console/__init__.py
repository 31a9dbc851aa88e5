"""The web console (``ivr-rating console``): Starlette, Jinja2 and HTMX, every asset vendored."""
