"""Modal's exception hierarchy (modal.exception, 1.6), so `except` clauses port unchanged.

Note that `TimeoutError` here deliberately does not subclass the builtin one,
exactly as in Modal: `except TimeoutError` does not catch SandboxTimeoutError.
"""


class Error(Exception):
    """Base class for every pysandbox error."""


class InvalidError(Error):
    """The user did something invalid: a bad argument, name, path or option."""


class ConflictError(InvalidError):
    """The request conflicts with the current state (e.g. exec in a finished sandbox)."""


class AlreadyExistsError(Error):
    """Creation clashes with an existing resource, such as a running sandbox's name."""


class NotFoundError(Error):
    """The sandbox, app, volume or secret does not exist."""


class PermissionDeniedError(Error):
    pass


class ResourceExhaustedError(Error):
    partial: "str | bytes"  # set where output was cut (an exec's stream): what was read up to the cut


class UnimplementedError(Error):
    pass


class InternalError(Error):
    pass


class ServiceError(Error):
    pass


class DataLossError(Error):
    pass


class AuthError(Error):
    pass


class TimeoutError(Error):  # noqa: A001 - Modal's name, on purpose
    """Base class of pysandbox timeouts."""


class SandboxTimeoutError(TimeoutError):
    """The sandbox exceeded its `timeout`."""


class SandboxTerminatedError(Error):
    """The sandbox was terminated."""


class ExecTimeoutError(TimeoutError):
    """A process started with exec() ran past its `timeout`."""


class FunctionTimeoutError(TimeoutError):
    pass


class MountUploadTimeoutError(TimeoutError):
    pass


class VolumeUploadTimeoutError(TimeoutError):
    pass


class OutputExpiredError(TimeoutError):
    pass


class InteractiveTimeoutError(TimeoutError):
    pass


class ClientClosed(Error):
    """An operation on a detached sandbox handle."""


class ExecutionError(Error):
    """Something unexpected happened at runtime."""


class SnapshotCreationError(Error):
    pass


class RemoteError(Error):
    pass


class ImageBuildError(RemoteError):
    def __init__(self, message: str = "", image_id: str = "") -> None:
        super().__init__(message)
        self.image_id = image_id


class ConnectionError(Error):  # noqa: A001 - Modal's name, on purpose
    pass


class RequestSizeError(Error):
    pass


class SerializationError(Error):
    pass


class DeserializationError(Error):
    pass


class VersionError(Error):
    pass


class LogsFetchError(Error):
    pass


class WorkspaceManagementError(Error):
    pass


class InternalFailure(Error):
    pass


class SandboxFilesystemError(Error):
    """Base class for `Sandbox.filesystem` errors (not an OSError, as in Modal)."""


class SandboxFilesystemNotFoundError(SandboxFilesystemError):
    pass


class SandboxFilesystemNotADirectoryError(SandboxFilesystemError):
    pass


class SandboxFilesystemIsADirectoryError(SandboxFilesystemError):
    pass


class SandboxFilesystemPermissionError(SandboxFilesystemError):
    pass


class SandboxFilesystemPathAlreadyExistsError(SandboxFilesystemError):
    pass


class SandboxFilesystemDirectoryNotEmptyError(SandboxFilesystemError):
    pass


class SandboxFilesystemFileTooLargeError(SandboxFilesystemError):
    pass


class FilesystemExecutionError(Error):
    """A FileIO (Modal 1.5 file API) operation failed in a way no builtin OSError names."""


class ModuleNotMountable(Exception):
    """A local module cannot be added to an image (Modal's add_local_python_source)."""


class InputCancellation(BaseException):
    pass


class DeprecationError(UserWarning):
    pass


class AsyncUsageWarning(UserWarning):
    pass


class ServerWarning(UserWarning):
    pass


class InternalAPIWarning(UserWarning):
    pass
