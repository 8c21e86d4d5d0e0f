"""Config, storage, workers and the ``tune`` command; shared by the app (tui/)."""


def __getattr__(name: str) -> str:
    # __version__ on demand: importlib.metadata costs ~30 ms at every start (tune status's
    # start-up budget is 0.5 s), and only --version needs it.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tune-tui")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
