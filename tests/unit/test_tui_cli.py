"""tune-tui's own process concerns that need no database."""

import subprocess
import sys
import time


def test_exit_after_ends_a_process_that_would_not_end_by_itself():
    # What a hung shutdown looks like: the main thread blocked for good. The deadline
    # thread must end the process with its code all the same.
    started = time.monotonic()
    program = "from tui.cli import exit_after; import threading; exit_after(0.2, 129); threading.Event().wait()"
    done = subprocess.run([sys.executable, "-c", program], timeout=30, capture_output=True)
    assert done.returncode == 129
    assert time.monotonic() - started < 25


def test_exit_after_does_not_keep_a_finished_process_alive():
    done = subprocess.run(
        [sys.executable, "-c", "from tui.cli import exit_after; exit_after(60, 3); print('done')"],
        timeout=30,
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "done")
