"""The selected study's best trial: value, parameters, key metrics, workers."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from runner.monitor import StudyView
from runner.status import format_value
from runner.text import printable

KEY_METRICS = ("sharpe", "total_return", "max_drawdown", "trades", "win_rate", "profit_factor")


def _fmt(value) -> Text:
    """A value or a name as a cell: text from a config or a backtest is shown as is, never as markup."""
    return Text(format_value(value) if isinstance(value, float) else printable(value))


def _key(view: StudyView) -> tuple:
    """What the panel draws depends on: the trials (version), the best's metrics once read
    back, the workers and the end."""
    s = view.status
    return (s.study, view.version, bool(s.best_metrics), s.workers_alive, s.desired_workers, s.ended_reason, s.parent,
            tuple(sorted({str(w["host"]) for w in s.workers if w["alive"]})))


class BestPanel(Static):
    DEFAULT_CSS = """
    BestPanel { height: 1fr; padding: 0 1; }
    """

    _key: tuple | None = None

    def show(self, view: StudyView | None) -> None:
        # Drawn again only when what it shows changed: an update lays the screen out again,
        # which once a second was most of an idle app's CPU (issue 14).
        key = None if view is None else _key(view)
        if key == self._key:
            return
        self._key = key
        if view is None:
            self.update("")
            return
        s = view.status
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold")
        table.add_column()
        multi = len(s.metrics) > 1
        if s.best_trial is None:
            table.add_row("best", "-")
        else:
            if multi:
                table.add_row("front", f"{s.front_size} trials")
                table.add_row("compromise", Text(f"trial {s.best_trial}", style="bold green"))
                for name, value in zip(s.metrics, (s.compromise_trial or {}).get("values", [])):
                    table.add_row(_fmt(name), Text(format_value(value), style="bold green"))
            else:
                table.add_row("best", Text(f"{format_value(s.best_value)}  (trial {s.best_trial})", style="bold green"))
            if s.best_feasible is not None:
                table.add_row("feasible", Text("yes", style="green") if s.best_feasible else Text("no", style="bold red"))
            for name, value in s.best_params.items():
                table.add_row(_fmt(name), _fmt(value))
            if s.best_on_bound:
                table.add_row(Text("on bound", style="yellow"),
                              _fmt(", ".join(s.best_on_bound) + ": widen the space there?"))
            shown = [m for m in KEY_METRICS if m in s.best_metrics and m not in s.metrics]
            for name in shown[: 3 if multi else 5]:
                table.add_row(Text(name, style="dim"), _fmt(s.best_metrics[name]))
        if s.duplicate:
            sources = ", ".join(f"{n} {src}" for src, n in sorted(s.duplicate_sources.items()))
            table.add_row("duplicates", _fmt(sources))
        table.add_row("", "")
        table.add_row("workers", f"{s.workers_alive} alive / {s.desired_workers}")
        hosts = sorted({str(w["host"]) for w in s.workers if w["alive"]})
        if hosts:
            table.add_row("hosts", _fmt(", ".join(hosts)))
        if s.ended_reason:
            table.add_row("ended", _fmt(s.ended_reason))
        if s.parent:
            table.add_row("refined from", _fmt(s.parent))
        self.update(table)
