"""Where studies live: PostgreSQL, embedded by default or external by URL.

Everything that knows how trials are stored is in this package, one job per module:

* :mod:`.urls` — which database (``--storage``, ``TUNE_STORAGE_URL`` or the
  embedded server), URL checks, and :func:`mask_url` to show a URL without its password;
* :mod:`.embedded` — the embedded PostgreSQL (a private socket, no TCP);
* :mod:`.connection` — deadlines, keepalives and the one retry helper every connection uses;
* :mod:`.schema` — the tables;
* :mod:`.journal` — trials as an Optuna journal in PostgreSQL, one stream per study;
* :mod:`.replay` — following a study from journal records read elsewhere (the monitor);
* :mod:`.checkpoint` — a worker's replay as JSON, so that a worker joining later reads
  only the records after it;
* :mod:`.database` — :class:`Database`, one handle per process: the control-plane
  tables through SQLAlchemy and an Optuna storage per study;
* :mod:`._optuna_private` — the only import of Optuna's private names, with why.

Trials are stored as an Optuna *journal* in a PostgreSQL table, one stream of
log records per study, replayed by Optuna's own ``JournalStorage``. Measured on
this kind of machine, the worker's overhead per trial is about a quarter of
Optuna's RDBStorage's (``benchmarks/bench_overhead.py``), and a reader can
follow a study by reading only the records it has not seen yet.
"""

from .connection import DatabaseAway, StorageError
from .database import Database, quiet_optuna, retry_on_disconnect
from .embedded import ENV_HOME, EmbeddedError, HomeError, tune_home
from .journal import PostgresJournalBackend, TuneJournalStorage
from .replay import JournalReplay
from .urls import ENV_URL, BadStorageURL, check_url, embedded_url, mask_url, resolve_url, stop_embedded

__all__ = [
    "ENV_HOME", "ENV_URL", "BadStorageURL", "Database", "DatabaseAway", "EmbeddedError", "HomeError",
    "JournalReplay", "PostgresJournalBackend", "StorageError", "TuneJournalStorage", "check_url", "embedded_url",
    "mask_url", "quiet_optuna", "resolve_url", "retry_on_disconnect", "stop_embedded", "tune_home",
]
