"""The one exception type for bad user input.

Raised wherever a file, argument or artifact is wrong; the CLI prints its message as one line and
exits with status 2. The message names the file (and line, argument or key) and says what is wrong.
"""


class InputError(ValueError):
    """Bad input from the user: a file, argument or artifact that cannot be used as given."""
