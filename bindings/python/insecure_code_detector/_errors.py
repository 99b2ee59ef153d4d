"""The exceptions a call into the library raises, one per C status (``_ERRORS``)."""

from __future__ import annotations

class DetectorError(Exception):
    """A call into the library failed. ``status`` is the C API's status name."""

    status = "ICD_ERR"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NullArgumentError(DetectorError):
    status = "ICD_ERR_NULL_ARGUMENT"


class InvalidUtf8Error(DetectorError, UnicodeError):
    status = "ICD_ERR_INVALID_UTF8"


class InvalidArgumentError(DetectorError, ValueError):
    status = "ICD_ERR_INVALID_ARGUMENT"


class FileAccessError(DetectorError, OSError):
    """A file or directory could not be read: a checkpoint's, or a source path given to
    :func:`find_functions_under` or :meth:`Detector.scan`."""

    status = "ICD_ERR_IO"


# The name the checkpoint's case has always had.
CheckpointNotFoundError = FileAccessError


class ConfigError(DetectorError):
    status = "ICD_ERR_CONFIG"


class TokenizerError(DetectorError):
    status = "ICD_ERR_TOKENIZER"


class WeightsError(DetectorError):
    status = "ICD_ERR_WEIGHTS"


class BackendUnavailableError(DetectorError):
    status = "ICD_ERR_BACKEND_UNAVAILABLE"


class InferenceError(DetectorError):
    status = "ICD_ERR_INFERENCE"


class InternalError(DetectorError):
    """A bug in the library (a caught panic)."""

    status = "ICD_ERR_PANIC"


class StoppedError(DetectorError):
    """The caller stopped the call: a training callback asked the run to stop."""

    status = "ICD_ERR_STOPPED"


_ERRORS = {
    1: NullArgumentError,
    2: InvalidUtf8Error,
    3: InvalidArgumentError,
    4: FileAccessError,
    5: ConfigError,
    6: TokenizerError,
    7: WeightsError,
    8: BackendUnavailableError,
    9: InferenceError,
    10: InternalError,
    11: StoppedError,
}
