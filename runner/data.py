"""A symbol's data as a config names it: loaded, validated, and kept once per host.

Every worker of a symbol needs the same validated bars. Loaded by each worker, a
1,000,000-bar file cost every one of them ~150 MB of private memory (the parser's
pool, pandas' frame, the backtest's copy) besides the parse itself. Instead, the
first process to load a symbol's data (``tune run``'s check, before any worker
starts) writes the validated columns as ``.npy`` files under
``TUNE_HOME/cache/data/<key>/``, and every process maps them read-only
(``np.load(mmap_mode="r")``): the host holds one copy in its page cache whatever
the number of workers, and a worker's start skips the parse and the checks.

The key is a hash of everything the data depends on: the file's resolved path,
size, modification time and inode (or the synthetic generator's settings), the
symbol, the period, and the code that parses, validates and generates data (an
upgrade is a new key). A changed file is a new key; writing it removes the entry
of the file's previous version. An entry is written into a private temporary
folder and renamed into place, so a reader sees a whole entry or none, and an
entry it cannot read is ignored (the data is loaded from its source again).
An entry no process has mapped for 30 days is removed when another is written.
Owner-only, like the rest of ``TUNE_HOME``; deleting ``TUNE_HOME/cache`` at any
time is safe. ``TUNE_DATA_CACHE=0`` turns the cache off (the benchmarks compare
both); a cache that cannot be written (a full disk, a read-only home) costs only
the sharing, never the run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import backtest

from .config import RunConfig, SyntheticData
from .storage.embedded import HomeError, new_private_file, private_dir, tune_home

log = logging.getLogger(__name__)

ENV_SWITCH = "TUNE_DATA_CACHE"
FORMAT = 1
# Temporary folders of writers that died are removed by the next writer after this long.
STALE_SECONDS = 3600
# An entry no process has mapped for this long is removed by the next writer.
UNUSED_DAYS = 30
# Source files whose code decides what the cached arrays hold.
_CODE = ("backtest/data.py", "backtest/synthetic.py", "runner/data.py")


@dataclass(frozen=True)
class SymbolData:
    """A symbol's validated bars, and its close-to-close returns when a cache holds them."""

    frame: pd.DataFrame
    close_returns: np.ndarray | None = None  # only a cache entry holds them

    @property
    def cached(self) -> bool:
        """Mapped from the host's cache."""
        return self.close_returns is not None

    def prices(self, symbol: str) -> backtest.PriceData:
        """The arrays a built-in strategy reads (mapped columns are used as they are)."""
        return backtest.PriceData.from_frame(self.frame, symbol, validated=True, close_returns=self.close_returns)


def load_frame(cfg: RunConfig, symbol: str) -> pd.DataFrame:
    """The symbol's validated OHLCV frame, from its file or synthetic, without the cache."""
    if cfg.data.path is not None:
        return backtest.load_ohlcv(
            cfg.data.path, symbol, start=cfg.data.start, end=cfg.data.end, base_dir=cfg.base_dir
        )
    syn = cfg.data.synthetic or SyntheticData()
    frame = backtest.synthetic_ohlcv(symbol, seed=syn.seed, bars=syn.bars, freq=syn.freq, start=syn.start)
    if cfg.data.start or cfg.data.end:
        frame = frame.loc[cfg.data.start : cfg.data.end]
        backtest.validate_ohlcv(frame, symbol)
    return frame


def load(cfg: RunConfig, symbol: str) -> SymbolData:
    """The symbol's validated data: mapped from the host's cache if an entry is there,
    else loaded (raising what ``load_frame`` raises for bad data), cached, and mapped."""
    root = _cache_root()
    key = _key(cfg, symbol) if root is not None else None
    if root is None or key is None:
        return SymbolData(load_frame(cfg, symbol))
    entry = root / key
    found = _map(entry)
    if found is not None:
        return found
    if entry.exists():  # whole when renamed into place, so damaged since: write it again
        shutil.rmtree(entry, ignore_errors=True)
    frame = load_frame(cfg, symbol)
    if _write(root, key, frame):
        found = _map(entry)
        if found is not None:
            return found  # this process too reads the shared copy, and its own is freed
    return SymbolData(frame)


def _enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "no", "false")


def _cache_root() -> Path | None:
    if not _enabled():
        return None
    try:
        home = tune_home()
        private_dir(home / "cache")
        return private_dir(home / "cache" / "data")
    except HomeError as exc:
        log.warning("data cache off: %s", exc)
        return None


@functools.cache
def _code_fingerprint() -> str:
    top = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for name in _CODE:
        with contextlib.suppress(OSError):
            digest.update((top / name).read_bytes())
    return digest.hexdigest()


def _key(cfg: RunConfig, symbol: str) -> str | None:
    """``<origin>-<version>``: origin names the data (file or generator, symbol, period),
    version what it held when cached. None when the file cannot be stat'ed (the
    uncached load reports that)."""
    origin: dict[str, object] = {"symbol": symbol, "start": cfg.data.start, "end": cfg.data.end}
    version: dict[str, object] = {"format": FORMAT, "code": _code_fingerprint()}
    if cfg.data.path is not None:
        path = backtest.data_path(cfg.data.path, symbol, cfg.base_dir)
        try:
            path = path.resolve()
            st = path.stat()
        except (OSError, RuntimeError):
            return None
        origin["file"] = str(path)
        # ctime too: a write sets it and nothing can set it back (cp -p restores an mtime).
        version.update(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
                       device=st.st_dev)
    else:
        origin["synthetic"] = (cfg.data.synthetic or SyntheticData()).model_dump(mode="json")

    def digest(part: dict[str, object]) -> str:
        return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:20]

    return f"{digest(origin)}-{digest(version)}"


def _map(entry: Path) -> SymbolData | None:
    """The entry's arrays mapped read-only, or None if it is missing or not whole."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            return None
        rows = int(meta["rows"])
        index_dtype = np.dtype(meta["index_dtype"])
        index = np.load(entry / "index.npy", mmap_mode="r")
        columns = {name: np.load(entry / f"c{i}.npy", mmap_mode="r") for i, name in enumerate(meta["columns"])}
        returns = np.load(entry / "close_returns.npy", mmap_mode="r")
        arrays = [index, returns, *columns.values()]
        if (index.dtype != np.int64 or index_dtype.kind != "M" or any(a.shape != (rows,) for a in arrays)
                or "close" not in columns):
            return None
        timestamps = pd.DatetimeIndex(index.view(index_dtype), name=meta.get("index_name"),
                                      freq=meta.get("index_freq"), copy=False)
        frame = pd.DataFrame(columns, index=timestamps, copy=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged: not ours to trust
        return None
    with contextlib.suppress(OSError):
        os.utime(entry / "meta.json")  # last used: entries unused for UNUSED_DAYS are removed
    return SymbolData(frame, close_returns=returns)


def _save(path: Path, values: np.ndarray) -> None:
    with new_private_file(path, "wb") as out:
        np.save(out, np.ascontiguousarray(values), allow_pickle=False)


def _write(root: Path, key: str, frame: pd.DataFrame) -> bool:
    """Write ``frame`` as the entry ``key``; False if it could not be (nothing is left
    behind). Another process writing the same entry at the same time is fine: the
    first rename wins and both read the winner's."""
    columns = [str(name) for name in frame.columns]
    values = [frame[name].to_numpy() for name in frame.columns]
    index = frame.index
    if (len(set(columns)) != len(columns) or any(v.dtype.kind not in "fiub" for v in values)
            or "close" not in columns or not isinstance(index, pd.DatetimeIndex) or index.tz is not None):
        return False  # not what load_frame makes: keep it in memory only
    needed = frame.memory_usage(index=True).sum() + 8 * len(frame)  # the columns, the index, close returns
    try:
        if shutil.disk_usage(root).free < 2 * needed:  # leave room: the cache is an optimisation
            log.warning("data cache not written: not enough free disk space")
            return False
        _remove_stale(root)
        temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError as exc:
        log.warning("data cache not written: %s", exc)
        return False
    try:
        _save(temp / "index.npy", index.to_numpy().view(np.int64))
        for i, column in enumerate(values):
            _save(temp / f"c{i}.npy", column)
        _save(temp / "close_returns.npy", backtest.close_to_close_returns(frame["close"].to_numpy(dtype="float64")))
        meta = {"format": FORMAT, "rows": len(frame), "columns": columns, "index_dtype": str(index.dtype),
                "index_name": index.name, "index_freq": index.freqstr, "written_at": time.time()}
        with new_private_file(temp / "meta.json") as out:
            json.dump(meta, out)
        try:
            os.rename(temp, root / key)
        except OSError:
            if not (root / key / "meta.json").exists():
                raise
            return True  # another process wrote it first
        _remove_other_versions(root, key)
        return True
    except OSError as exc:
        log.warning("data cache not written: %s", exc)
        return False
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _remove_other_versions(root: Path, key: str) -> None:
    """Entries of the same data at other versions (the file changed): never read again.
    Processes that have them mapped keep their pages until they exit."""
    origin = key.split("-")[0]
    for entry in root.glob(f"{origin}-*"):
        if entry.name != key:
            shutil.rmtree(entry, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    """Temporary folders of writers that died, and entries unused for UNUSED_DAYS."""
    now = time.time()
    for folder in root.iterdir():
        with contextlib.suppress(OSError):
            if folder.name.startswith(".tmp-"):
                if now - folder.stat().st_mtime > STALE_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
            elif now - (folder / "meta.json").stat().st_mtime > UNUSED_DAYS * 86400:
                shutil.rmtree(folder, ignore_errors=True)
