"""Worker processes killed from outside: the batch goes on (the image is retried alone, and fails
alone if its worker dies again); killing the main process takes its workers with it."""

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import synthetic_rgby, write_image

from hpa_scc.core.parallel import run_tasks


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _dies_each_time(task: int) -> int:
    if task == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return task


def test_a_task_whose_worker_always_dies_fails_alone():
    results = sorted(run_tasks(_dies_each_time, list(range(6)), 2, on_death=lambda t: -t), key=abs)
    assert results == [0, 1, -2, 3, 4, 5]


def _segment_command(images, out):
    return [sys.executable, "-m", "hpa_scc", "segment", "--images", str(images), "--out", str(out), "--workers", "2",
            "--quiet"]


def _images(folder, n=8):
    for seed in range(n):
        write_image(folder, f"img{seed}", synthetic_rgby(40 + seed, 768))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_segment_goes_on_when_a_worker_is_killed(tmp_path):
    images, out = tmp_path / "images", tmp_path / "masks"
    _images(images)
    proc = subprocess.Popen(_segment_command(images, out), stderr=subprocess.PIPE, text=True)
    deadline, killed = time.time() + 60, False
    while time.time() < deadline and not killed and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if _alive(c)]
        if len(workers) >= 2:  # the pool's workers (and its resource tracker) are up
            os.kill(max(workers), signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert killed
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    assert sorted(p.name for p in out.glob("*_cells.png")) == [f"img{i}_cells.png" for i in range(8)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_segment_takes_its_workers_with_it(tmp_path):
    images, out = tmp_path / "images", tmp_path / "masks"
    _images(images)
    proc = subprocess.Popen(_segment_command(images, out), stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 60, []
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if _alive(c)]
        time.sleep(0.02)
    assert workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
