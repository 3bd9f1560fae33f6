"""Test setup shared by every layer.

- Qt renders offscreen; torch uses one thread (as the live engine does).
- ``gpu`` tests skip without CUDA.
- ``jack`` tests use the ``jack_server`` fixture: a real JACK server (the one already running, e.g. started
  by .ci/run, or a dummy-driver server started here). Under CI=true a skipped
  jack test is turned into a failure, so CI can never silently skip them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never let libjack auto-start a server with the user's ~/.jackdrc (ALSA).
os.environ.setdefault("JACK_NO_START_SERVER", "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

try:
    import torch

    torch.set_num_threads(1)
    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # the layering test runs without torch too
    _HAS_CUDA = False

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not _HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and "jack" in item.keywords:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"jack test skipped under CI=true (not allowed): {reason}"


def _jack_running() -> bool:
    from copilot_app.engine.midi_ports import jack_server_running

    return jack_server_running()


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory: pytest.TempPathFactory):
    """A running JACK server (dummy driver when we start it ourselves)."""
    previous_api = os.environ.get("COPILOT_MIDI_API")
    os.environ["COPILOT_MIDI_API"] = "UNIX_JACK"
    proc = None
    previous_server = os.environ.get("JACK_DEFAULT_SERVER")
    if not _jack_running():
        jackd = shutil.which("jackd")
        if jackd is None:
            pytest.skip("jackd is not installed (apt install jackd2)")
        log = tmp_path_factory.mktemp("jack") / "jackd.log"
        # A server name of our own: a "default" server that died uncleanly
        # leaves semaphores in /dev/shm that wedge the next one of that name
        # (every cycle then times out). Clients and subprocesses follow the
        # JACK_DEFAULT_SERVER variable.
        os.environ["JACK_DEFAULT_SERVER"] = f"copilot-tests-{os.getpid()}"
        with open(log, "wb") as fh:
            # -S (synchronous): the server waits for every client each cycle, so
            # a loaded 2-core CI box slows the graph down instead of dropping MIDI.
            proc = subprocess.Popen([jackd, "-n", os.environ["JACK_DEFAULT_SERVER"], "-S", "--no-realtime",
                                     "-d", "dummy", "-r", "48000", "-p", "256"],
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while not _jack_running():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"could not start jackd -d dummy: {log.read_text(errors='replace')[-300:]}")
            time.sleep(0.2)
    yield
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    for name, value in (("COPILOT_MIDI_API", previous_api), ("JACK_DEFAULT_SERVER", previous_server)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
