"""runner/hosts.py: per host, the live workers, what they use and the host's load."""

from __future__ import annotations

from runner import hosts


def _worker(host="a", study="s1", alive=True, at="2026-01-01T12:00:00+00:00", cpu=50.0, rss=100, load=1.0, cpus=4,
            mem=40.0, **extra):
    return {"id": f"{host}-{study}-{at}", "study": study, "host": host, "pid": 1, "status": "running", "alive": alive,
            "heartbeat_at": at, "trials_done": 0, "exit_reason": None, "cpu_percent": cpu, "rss_bytes": rss,
            "host_load": load, "host_cpus": cpus, "host_mem_percent": mem, **extra}


def test_one_row_per_host_with_the_live_workers_sums_sorted_by_host():
    rows = hosts.summarise([
        _worker("b", "s2", cpu=10.0, rss=5),
        _worker("a", "s1", cpu=95.5, rss=300),
        _worker("a", "s2", cpu=80.0, rss=200),
        _worker("a", "s1", cpu=70.0, rss=100),
        _worker("a", "s3", alive=False, cpu=999.0, rss=10**9),  # dead: not counted
    ])
    assert [r.host for r in rows] == ["a", "b"]
    a, b = rows
    assert (a.workers, a.studies, a.cpu_percent, a.rss_bytes) == (3, ("s1", "s2"), 245.5, 600)
    assert (b.workers, b.studies, b.cpu_percent, b.rss_bytes) == (1, ("s2",), 10.0, 5)


def test_a_host_with_only_dead_workers_has_no_row():
    assert hosts.summarise([_worker("a", alive=False), _worker("b", alive=False)]) == []
    assert hosts.summarise([]) == []


def test_the_host_figures_come_from_its_most_recent_heartbeat():
    [row] = hosts.summarise([
        _worker(at="2026-01-01T12:00:01+00:00", load=2.0, cpus=4, mem=50.0),
        _worker(at="2026-01-01T12:00:03+00:00", load=3.0, cpus=4, mem=60.0),
        _worker(at="2026-01-01T13:00:02+01:00", load=9.0, cpus=4, mem=99.0),  # 12:00:02 UTC: older
    ])
    assert (row.host_load, row.host_cpus, row.host_mem_percent) == (3.0, 4, 60.0)
    assert row.load_per_cpu == 0.75 and not row.overloaded


def test_a_heartbeat_that_measured_nothing_leaves_the_figures_to_an_older_one():
    [row] = hosts.summarise([
        _worker(at="2026-01-01T12:00:01+00:00", load=2.0, cpus=8, mem=50.0),
        _worker(at="2026-01-01T12:00:09+00:00", cpu=None, rss=None, load=None, cpus=None, mem=None),
    ])
    assert (row.workers, row.cpu_percent, row.rss_bytes) == (2, 50.0, 100)
    assert (row.host_load, row.host_cpus, row.host_mem_percent) == (2.0, 8, 50.0)


def test_unmeasured_workers_give_unknown_figures_never_an_overload():
    [row] = hosts.summarise([_worker(cpu=None, rss=None, load=None, cpus=None, mem=None, heartbeat_at="")])
    assert row.workers == 1
    assert (row.cpu_percent, row.rss_bytes, row.host_load, row.host_cpus, row.host_mem_percent) == (None,) * 5
    assert row.load_per_cpu is None and not row.overloaded


def test_overloaded_when_load_per_cpu_above_one_or_memory_above_ninety_percent():
    def flag(load, cpus, mem):
        return hosts.summarise([_worker(load=load, cpus=cpus, mem=mem)])[0].overloaded

    assert not flag(4.0, 4, 90.0)  # exactly at both limits
    assert flag(4.1, 4, 10.0)
    assert flag(0.1, 4, 90.5)
    assert not flag(100.0, None, 10.0)  # load without the CPU count: unknown
    assert not flag(100.0, 0, 10.0)



def test_a_workers_first_heartbeat_reports_no_cpu_figure_then_a_measured_one():
    from runner.heartbeat import ResourceMeter

    meter = ResourceMeter()
    first = meter.measure()
    assert first is not None and first.cpu_percent is None  # psutil's first call measures nothing
    assert first.rss_bytes > 0 and first.host_cpus >= 1
    sum(i * i for i in range(200_000))  # some CPU time for the next figure to cover
    second = meter.measure()
    assert second is not None and second.cpu_percent is not None and second.cpu_percent >= 0
