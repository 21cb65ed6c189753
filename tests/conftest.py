"""pytest configuration: tests never reach the network (see helpers.py)."""

import helpers  # noqa: F401  (sets the offline environment variables on import)
