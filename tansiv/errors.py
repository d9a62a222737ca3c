"""Errors that name what the user has to fix."""


class TansivError(Exception):
    """An error tansiv reports to the user as is (no traceback)."""


class InputError(TansivError):
    """Bad input: names the file, and the line or element when known."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
