"""The servers and processes the tutorial starts and stops: the model server (notebook 04),
`mlflow ui` and `mlflow server` (screenshots, tests), a training to kill (notebook 05). Each runs
in its own process group, and stopping it checks that nothing it started lives on."""

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psutil


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(command: list[str], url: str, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """Run `command`, a server, while the block runs, from when `url` answers 200 (within 3 min);
    its output goes to a file, quoted if it exits or never answers."""
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                with suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    said = log.read().decode(errors="replace")[-3000:]
                    state = "never answered" if server.poll() is None else "exited"
                    raise RuntimeError(f"`{' '.join(command[:5])}` {state} ({url}):\n{said}")
                time.sleep(1)
            yield server
        finally:
            stop(server)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group `process` leads (started with `start_new_session`), give it 30 s
    to finish what it serves, then `ensure_gone` what it started."""
    started = family(process)
    with suppress(ProcessLookupError):  # the group is gone when the server failed to start
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    ensure_gone(started, " ".join(map(str, process.args[:4])))


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and every process below it at once, as a power cut would."""
    for member in family(process):
        with suppress(psutil.NoSuchProcess):  # it may have exited already
            member.kill()
    process.wait()


def family(process: subprocess.Popen) -> list[psutil.Process]:
    """The process and its descendants, listed before a kill re-parents them."""
    with suppress(psutil.NoSuchProcess):
        return [*psutil.Process(process.pid).children(recursive=True), psutil.Process(process.pid)]
    return []


def ensure_gone(processes: list[psutil.Process], what: str) -> None:
    """Give `processes` a moment to exit, kill those that do not, and fail if one survives (a
    zombie does not: it only waits for its parent to read its exit status)."""
    for process in psutil.wait_procs(processes, timeout=10)[1]:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    left = [p.pid for p in psutil.wait_procs(processes, timeout=5)[1] if running(p)]
    if left:
        raise RuntimeError(f"{what} left processes running: {left}")


def running(process: psutil.Process) -> bool:
    with suppress(psutil.NoSuchProcess):
        return process.status() != psutil.STATUS_ZOMBIE
    return False
