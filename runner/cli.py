"""``tune``: the headless command line (run, worker, status, pause/resume/stop, db).

Every command takes ``--storage URL`` (or ``TUNE_STORAGE_URL``); without it,
the embedded database. Bad input (a broken config, a bad data file, an unknown
study) prints one line to stderr and exits 2; no traceback.

This module is the front door only: the parser, and the dispatch to
runner/commands.py, imported once the arguments are parsed, so that ``tune
--help`` (and a mistyped command) pays for argparse, not for SQLAlchemy, Optuna
and pandas (benchmarks/bench_startup.py).
"""

from __future__ import annotations

import argparse
import sys

from .env import ENV_URL


def add_storage_option(p: argparse.ArgumentParser) -> None:
    """``--storage URL``: the one option every command of ``tune`` and ``tune-tui`` shares."""
    p.add_argument(
        "--storage", metavar="URL",
        help=f"PostgreSQL URL (default: ${ENV_URL}, else the embedded database)",
    )


class _VersionAction(argparse.Action):
    """argparse's "version" action, with the version looked up only when asked for."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from . import __version__

        print(f"{parser.prog} {__version__}")  # to stdout, as argparse's own version action
        parser.exit()


def add_version_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", action=_VersionAction, default=argparse.SUPPRESS)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune", description="Optimize trading-strategy backtests with Optuna on PostgreSQL.")
    add_version_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a config's studies headless, with progress bars")
    p.add_argument("config", nargs="?", help="config file (default: the bundled demo)")
    add_storage_option(p)

    p = sub.add_parser("worker", help="one optimizer process for one symbol (what run starts; what other hosts run)")
    p.add_argument("config")
    p.add_argument("--symbol", required=True)
    p.add_argument("--fold", type=int, help="a walk-forward fold's study (1..folds; [validation] walk_forward)")
    p.add_argument("--worker-id", help=argparse.SUPPRESS)  # the row a launcher claimed for this process
    add_storage_option(p)

    p = sub.add_parser("status", help="one row per study")
    p.add_argument("config", nargs="?", help="only this config's studies")
    p.add_argument("--json", action="store_true", help="machine-readable output (keys: see README)")
    p.add_argument("--archived", action="store_true", help="the archived studies too (tune archive)")
    add_storage_option(p)

    for name, text in (("pause", "pause studies (running trials finish)"), ("resume", "resume paused studies"),
                       ("stop", "stop studies' workers after their running trial")):
        p = sub.add_parser(name, help=text)
        p.add_argument("studies", nargs="*", metavar="STUDY")
        p.add_argument("--all", action="store_true", help="every study in the database but the archived ones")
        add_storage_option(p)

    p = sub.add_parser("export", help="a study's best parameters and metadata (YAML/JSON), all trials (CSV)")
    p.add_argument("study")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.add_argument("--output", "-o", metavar="FILE", help="write the summary here instead of stdout")
    p.add_argument("--csv", metavar="FILE", help="also write every trial to this CSV file")
    add_storage_option(p)

    p = sub.add_parser("report", help="how much of a study's best is luck: holdout, DSR, PBO, robustness, importances")
    p.add_argument("study")
    p.add_argument("--config", help="the study's config, if not where it was run from")
    p.add_argument("--json", action="store_true", help="the report as JSON (what tune status --json carries)")
    add_storage_option(p)

    p = sub.add_parser("refine", help="a new config and study narrowed around a study's top trials (which start it)")
    p.add_argument("study")
    p.add_argument("--top", type=int, default=10, metavar="K", help="the top K distinct trials (default 10)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="the new config (default: {run}_r{n}.toml beside the study's config)")
    p.add_argument("--fix-below", type=float, default=0.05, metavar="SHARE",
                   help="fix parameters with less than this share of the importances (default 0.05; 0: none)")
    p.add_argument("--config", help="the study's config, if not where it was run from")
    add_storage_option(p)

    p = sub.add_parser("stage", help="write a study's chosen parameters for deployment (versioned YAML and -latest)")
    p.add_argument("study")
    p.add_argument("--dir", default="staging", help="where to write them (default: ./staging)")
    p.add_argument("--config", help="the study's config, if not where it was run from")
    add_storage_option(p)

    p = sub.add_parser("archive", help="take studies out of tune status and the app; they stay loadable")
    p.add_argument("studies", nargs="+", metavar="STUDY")
    p.add_argument("--undo", action="store_true", help="bring them back")
    add_storage_option(p)

    p = sub.add_parser("delete", help="delete studies and every trial, result and report of theirs, for good")
    p.add_argument("studies", nargs="+", metavar="STUDY")
    p.add_argument("--yes", action="store_true", help="do not ask (needed when not on a terminal)")
    add_storage_option(p)

    p = sub.add_parser("dashboard", help="every study of the database in optuna-dashboard (read-only; the "
                                         "[dashboard] extra)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this host only)")
    add_storage_option(p)

    p = sub.add_parser("notify", help="send a test message through a config's [notify] channels")
    p.add_argument("config", help="config file with a [notify] table")

    p = sub.add_parser("db", help="the database: show its URL (masked) or stop the embedded server")
    p.add_argument("action", choices=["url", "stop"])
    add_storage_option(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .commands import dispatch

    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
