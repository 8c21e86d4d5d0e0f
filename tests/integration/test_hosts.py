"""Workers report their resource use in their heartbeat; the monitor passes it on."""

from __future__ import annotations

import socket

import sqlalchemy as sa

from runner import hosts
from runner.monitor import Monitor
from tests.helpers import ledger_config, running_worker, wait_for, worker_env


def test_a_running_workers_heartbeat_carries_its_resource_use(db, db_url, tmp_path):
    config = ledger_config(tmp_path, "res", target=200)
    study = "res-AAA"
    with running_worker(config, worker_env(tmp_path, db_url, sleep=0.3)):
        monitor = Monitor(db, [study])

        def measured():
            workers = [w for s in monitor.poll().statuses for w in s.workers]
            return [w for w in workers if w["alive"] and w["cpu_percent"] is not None] and workers

        workers = wait_for(measured, timeout=60, message="a live worker's heartbeat with its resource use")
        [w] = workers
        assert w["study"] == study and w["host"] == socket.gethostname()
        assert w["cpu_percent"] >= 0 and w["rss_bytes"] > 10_000_000  # a Python process with numpy and Optuna
        assert w["host_cpus"] >= 1 and 0 < w["host_mem_percent"] <= 100 and w["host_load"] >= 0

        with db.engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT cpu_percent, rss_bytes, host_load, host_cpus, host_mem_percent FROM tune_workers WHERE study = :s"
            ), {"s": study}).one()
        assert row.cpu_percent is not None and row.rss_bytes > 0 and row.host_cpus >= 1

        [host] = hosts.summarise(workers)
        assert (host.host, host.workers, host.studies) == (socket.gethostname(), 1, (study,))
        assert host.rss_bytes == w["rss_bytes"] and host.host_cpus == w["host_cpus"]
