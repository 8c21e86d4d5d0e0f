"""User-written backtests, named in the config as ``"package.module:function"``.

Contract for a user backtest function:

    def my_backtest(params: dict, data: pandas.DataFrame) -> float | dict[str, float]

* ``params`` is the trial's parameter set: a dict from parameter name to the
  value the optimizer suggested for it.
* ``data`` is the symbol's validated OHLCV frame: a tz-naive DatetimeIndex
  named ``timestamp`` (sorted, no duplicates) and float64 columns ``open``,
  ``high``, ``low``, ``close``, ``volume`` (and ``adj_close`` if the file has
  one). Prices are finite and positive. Each call gets its own frame object
  over the same arrays: a change the function makes to it (pandas copies
  on write) stays in that call and never reaches the next trial.
* Return a number to use it directly as the trial's score, or a dict of
  metric name to number from which the config's objective metric is read
  (extra entries are recorded alongside). Values must be finite.
* Raising an exception fails the trial with the exception's message.
* The function must not look ahead: a decision at a bar may only use data up
  to that bar. Nothing can enforce this for user code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def resolve_user_backtest(
    spec: str, search_path: Path | str | Iterable[Path | str] | None = None
) -> Callable:
    """Import ``"package.module:function"`` and return the function.

    ``search_path`` (one folder or several, e.g. the config file's folder and
    the working directory) is put at the front of ``sys.path`` first, so
    modules beside the config can be imported. The part after the colon may
    be dotted (``module:Class.method``). Raises ValueError for a malformed
    spec or a non-callable target, ImportError when the module or attribute
    does not exist; both messages name the spec.
    """
    module_name, separator, attribute_path = str(spec).partition(":")
    module_name, attribute_path = module_name.strip(), attribute_path.strip()
    if not separator or not module_name or not attribute_path:
        raise ValueError(f"user backtest {spec!r} must look like 'package.module:function'")

    if search_path is not None:
        folders = [search_path] if isinstance(search_path, (str, Path)) else list(search_path)
        for folder in reversed(folders):
            folder = str(Path(folder).resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)

    try:
        target = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportError(f"user backtest {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    for attribute in attribute_path.split("."):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            raise ImportError(
                f"user backtest {spec!r}: {module_name!r} has no attribute {attribute_path!r}"
            ) from None
    if not callable(target):
        raise ValueError(f"user backtest {spec!r} is not callable (it is a {type(target).__name__})")
    return target
