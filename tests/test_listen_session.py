"""`listen --session FILE` on real JACK ports: the session is saved as it goes and continued next time."""
from __future__ import annotations

import json
import queue
import signal
import time

import mido
import pytest

from tests.helpers import app_virtual_ports, drain_heard, play_notes, start_listen
from tests.test_engine_continue import checkpoint  # noqa: F401  (fixture)

pytestmark = [pytest.mark.jack, pytest.mark.usefixtures("jack_server")]


def one_answer() -> None:
    """Play the arpeggio into the running `listen` and wait for its answer."""
    received: "queue.Queue[mido.Message]" = queue.Queue()
    with app_virtual_ports(received) as keys:
        time.sleep(0.3)
        play_notes(keys, time.sleep, 0.22, 0.03)
        got: list[mido.Message] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not drain_heard(received, got):
            time.sleep(0.05)
        assert drain_heard(received, got), "no answer came back"
        time.sleep(1.5)  # the 1-bar answer plays out


def session_after_one_answer(checkpoint, path, *flags: str) -> dict:  # noqa: F811
    """Run `listen --session path *flags`, get one answer, stop it (Ctrl-C); the saved file."""
    proc = start_listen(checkpoint, "--session", str(path), *flags)
    try:
        one_answer()
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return json.loads(path.read_text())


def test_listen_saves_its_session_and_continues_it_with_the_flags_given_next_time(checkpoint, tmp_path):  # noqa: F811
    path = tmp_path / "jam.json"
    first = session_after_one_answer(checkpoint, path, "--key", "A minor")
    assert [t["number"] for t in first["takes"]] == [1]
    assert first["settings"]["key"] == "A minor"
    a_minor = {9, 11, 0, 2, 4, 5, 7, 8}
    assert all(n[2] % 12 in a_minor for v in first["takes"][0]["variations"] for n in v)

    second = session_after_one_answer(checkpoint, path, "--density", "0.5")
    assert [t["number"] for t in second["takes"]] == [1, 2]  # numbers go on, take 1 kept as it was
    assert second["takes"][0] == first["takes"][0]
    assert (second["settings"]["key"], second["settings"]["density"]) == ("off", 0.5)  # the flags given now
