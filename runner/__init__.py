"""Config, storage, workers and the ``tune`` command; shared by the app (tui/)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tune-tui")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
