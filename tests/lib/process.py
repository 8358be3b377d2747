"""process.py - the child processes a Python test owns.

Every process a test starts (a collector, a stand-in Respan, a gRPC
client) runs in a session (process group) of its own, with stdin and
stdout closed (or, from spawn_piped, pipes to the test) and stderr
appended to a log file, and is killed at interpreter exit whatever happened,
so a failing test never leaves one behind holding ports. The system tests'
collectors (tests/system/collector.py and the respan tests) and the
stand-in's Python client (respan_standin.Standin) all start theirs here.

Standard library only. Importers set sys.dont_write_bytecode first, so
that no __pycache__ lands in the source tree.
"""

import atexit
import os
import signal
import subprocess
import time

_owned = []


def spawn(cmd, stderr_path, env=None, cwd=None):
    """Starts cmd in a new session, stderr appended to stderr_path."""
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=env, cwd=cwd, start_new_session=True)
    _owned.append(proc)
    return proc


def spawn_piped(cmd, stderr_path, env=None, cwd=None):
    """As spawn, but with stdin and stdout as pipes (text, line-buffered),
    for a child the test talks to line by line."""
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=cwd, start_new_session=True, text=True, bufsize=1)
    _owned.append(proc)
    return proc


def kill(proc):
    """SIGKILL to the whole process group, and reap."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def stop(proc, timeout):
    """SIGTERM and wait: the exit code, or None when it had to be killed."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            return None
    return proc.returncode


def wait_stopped(pid, timeout=5):
    """Waits until every thread of pid is stopped: kill(SIGSTOP) returns
    before a thread busy on another CPU has stopped, and such a thread can
    still answer a request meanwhile (seen once under the sanitizer build)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass  # a thread that just ended
        if states and all(st in ("T", "t") for st in states):
            return
        time.sleep(0.01)
    raise AssertionError("process %d did not stop within %d s of SIGSTOP" % (pid, timeout))


def read_text(path):
    """A log file's text ("" when there is none yet)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


@atexit.register
def _kill_owned():
    for proc in _owned:
        kill(proc)
