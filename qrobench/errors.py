"""User-facing errors: the CLI prints them on one line and exits with status 2."""


class QrobenchError(Exception):
    """An error caused by the user's input; the message says what was wrong and how to fix it."""


class DataError(QrobenchError):
    pass


class ModelCardError(QrobenchError):
    pass


class CheckpointError(QrobenchError):
    pass


class UnknownNameError(QrobenchError):
    """A model, architecture or attack name that is not registered."""

    def __init__(self, kind: str, name: str, valid):
        valid = sorted(valid)
        super().__init__(
            f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid) if valid else '(none)'}"
        )
        self.kind, self.name, self.valid = kind, name, valid
