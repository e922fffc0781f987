"""The one base of every error either tool reports to its user.

Libraries never call sys.exit: they raise a subclass (minicontainer.errors,
hpcshim.errors) with a message that names the problem and a hint that says
what to do. Each command line prints `<tool>: <message> (<hint>)` as one
line on stderr and exits with the class's code, so a script can tell the
problems apart.
"""


class UserError(Exception):
    """A problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())  # one line, whatever the parts held
