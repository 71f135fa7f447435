"""pysandbox: Modal's Sandbox API on your own Linux machine.

    import pysandbox as modal

    app = modal.App.lookup("my-app", create_if_missing=True)
    sb = modal.Sandbox.create(app=app)
    print(sb.exec("python", "-c", "print('hello')").stdout.read())
    sb.terminate()
"""

from . import exception, types
from ._modal_alias import install_as_modal
from ._version import __version__
from .app import App
from .container_process import ContainerProcess
from .exception import Error
from .file_io import FileIO
from .filesystem import SandboxFilesystem
from .image import Image
from .io_streams import StreamReader, StreamWriter
from .network import Tunnel
from .output import enable_output
from .probe import Probe
from .sandbox import Sandbox
from .secret import Secret
from .stream_type import StreamType
from .types import FileEntry, FileEntryType, FileInfo, FileType, FileWatchEvent, FileWatchEventType
from .volume import Volume

__all__ = [
    "__version__",
    "App",
    "ContainerProcess",
    "Error",
    "FileIO",
    "FileInfo",
    "FileType",
    "FileWatchEvent",
    "FileWatchEventType",
    "Image",
    "Probe",
    "Sandbox",
    "SandboxFilesystem",
    "Secret",
    "StreamReader",
    "StreamType",
    "StreamWriter",
    "Tunnel",
    "FileEntry",
    "FileEntryType",
    "Volume",
    "enable_output",
    "exception",
    "install_as_modal",
    "types",
]
