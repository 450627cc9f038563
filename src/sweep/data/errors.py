"""The one exception of the data stage: an input error the user can fix. Cheap to import (no numpy, torch or
tokenizers), so the CLI can catch it on every command."""


class DataError(ValueError):
    """An input error a user can fix; the message names the file or dataset and the fix."""
