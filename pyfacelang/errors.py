"""Exception types. Every error pyfacelang raises on bad input derives from
`FaceLangError`, so the CLI can print one line and exit non-zero without a
traceback, while library users can catch one type."""


class FaceLangError(Exception):
    """Base class: a problem with the user's input or files, not a bug."""


class ModelFileError(FaceLangError):
    """A face-model file is missing, unreadable, or does not have the expected
    keys, shapes or dtypes."""


class UnsafePickleError(ModelFileError):
    """A pickle names a class or function outside the small allow-list that
    official model files use; loading it could run arbitrary code."""


class UnknownParameterError(FaceLangError, KeyError):
    """A parameter (e.g. a blendshape name) that the face model does not have."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ShapeError(FaceLangError, ValueError):
    """An array has the wrong shape or dtype for the operation."""


class TokenizerMismatchError(FaceLangError):
    """A model that reads or writes face tokens was paired with a tokenizer
    other than the one it was trained on (token ids would mean other faces)."""
