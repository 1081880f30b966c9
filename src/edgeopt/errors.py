"""One exception type for user-facing errors.

The CLI prints an `EdgeoptError` as a single line and exits 2, so bad input never
surfaces as a traceback from deep inside a library.
"""


class EdgeoptError(Exception):
    """An error caused by the user's input (config, files, devices): shown as one line."""
