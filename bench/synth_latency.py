"""Benchmark of the built-in piano's latency: note-on to sound (not a test).

    python bench/synth_latency.py            # table + bench/results/synth_latency.json
    python bench/synth_latency.py --json     # JSON on stdout
    python bench/synth_latency.py --notes 50 --period 128

A private JACK server (dummy driver, 48 kHz, a 256-frame period by default)
plays the app's FluidSynth output (copilot_app/engine/synth_output.py, the
same object the app uses, with the FluidR3 GM SoundFont); a second JACK
client (bench/_jack_recorder.py) records it. For each note, at a random
phase of the JACK cycle:

- "direct": ``SynthOutput.send(note_on)`` at time t0 (as MIDI thru does);
- "player": the Player schedules a note-on for t0 and its scheduler thread
  sends it (as a take is played).

The sound's onset is the first sample above -60 dBFS; its time is when its
JACK cycle's process callback ran (plus its offset in the cycle), which errs
late. "graph" is onset - t0: the wait for the next cycle plus the rendering.
"to sound" adds the system playback ports' latency (what JACK reports for
the path from the graph to the speaker: one period with the dummy driver,
``-n`` periods with an ALSA card). The target: to sound <= 15 ms.

Reverb is off here so each note starts in silence (the reverb is a parallel
send: it adds no delay to the onset); between notes every voice is stopped.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mido  # noqa: E402

from bench._report import utc_stamp, write_and_print  # noqa: E402

TARGET_MS = 15.0


def _start_jack(period: int, rate: int) -> tuple[subprocess.Popen | None, str]:
    jackd = shutil.which("jackd")
    if jackd is None:
        raise SystemExit("synth_latency.py: error: jackd is not installed (apt install jackd2)")
    server = f"copilot-synth-bench-{os.getpid()}"
    os.environ["JACK_DEFAULT_SERVER"] = server
    os.environ["JACK_NO_START_SERVER"] = "1"
    os.environ["COPILOT_MIDI_API"] = "UNIX_JACK"
    proc = subprocess.Popen([jackd, "-n", server, "-S", "--no-realtime", "-d", "dummy", "-r", str(rate),
                             "-p", str(period)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    from copilot_app.engine.midi_ports import jack_server_running

    deadline = time.monotonic() + 15
    while not jack_server_running():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("synth_latency.py: error: jackd -d dummy did not start")
        time.sleep(0.1)
    return proc, server


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "max_ms": round(ordered[-1], 2), "min_ms": round(ordered[0], 2)}


def measure(notes: int, period: int, rate: int, seed: int = 0) -> dict:
    from bench._jack_recorder import JackRecorder, onset, synth_ports
    from copilot_app.engine.player import PlannedNote, Player
    from copilot_app.engine.synth_output import JACK_CLIENT, SynthOutput

    rng = random.Random(seed)
    t = time.monotonic()
    synth = SynthOutput(reverb=False)
    open_s = time.monotonic() - t
    player = Player(synth)
    player.start()
    results: dict[str, list[float]] = {"direct": [], "player": []}
    missed = 0
    try:
        with JackRecorder(synth_ports(JACK_CLIENT)) as rec:
            playback = rec.playback_latency()
            time.sleep(0.3)
            for k in range(notes):
                for path in ("direct", "player"):
                    pitch = rng.randrange(48, 84)
                    time.sleep(0.03 + rng.random() * period / rate)  # a random phase of the cycle
                    rec.take()
                    if path == "direct":
                        t0 = time.monotonic()
                        synth.send(mido.Message("note_on", note=pitch, velocity=90))
                    else:
                        t0 = time.monotonic() + 0.02
                        player.schedule([PlannedNote(pitch, 90, t0, t0 + 0.05)])
                    time.sleep(max(0.0, t0 - time.monotonic()) + 0.06)
                    r = rec.take()
                    i = onset(r.signal, start=r.index_at(t0 - 0.02))
                    if i is None:
                        missed += 1
                    else:
                        results[path].append((r.time_at(i) - t0) * 1000)
                    player.cancel()
                    synth.send(mido.Message("note_off", note=pitch))
                    synth.all_notes_off()
                    time.sleep(0.02)
    finally:
        player.close()
        synth.close()
    out = {"period_frames": period, "rate_hz": rate, "period_ms": round(1000 * period / rate, 2),
           "playback_latency_frames": playback, "playback_latency_ms": round(1000 * playback / rate, 2),
           "synth_open_s": round(open_s, 3), "missed": missed, "driver": "jack (dummy)"}
    for path, values in results.items():
        graph = _stats(values) if values else None
        total = _stats([v + 1000 * playback / rate for v in values]) if values else None
        out[path] = {"graph": graph, "to_sound": total}
    worst = max((out[p]["to_sound"]["max_ms"] for p in results if out[p]["to_sound"]), default=float("inf"))
    out["worst_to_sound_ms"] = worst
    out["target_ms"] = TARGET_MS
    out["meets_target"] = bool(worst <= TARGET_MS and missed == 0)
    return out


def table(res: dict) -> str:
    lines = [f"Built-in piano latency, note-on to sound ({res['date']}, {res['machine']})",
             f"JACK dummy driver, {res['rate_hz']} Hz, period {res['period_frames']} frames "
             f"({res['period_ms']} ms), playback latency {res['playback_latency_frames']} frames "
             f"({res['playback_latency_ms']} ms); {res['direct']['graph']['n'] if res['direct']['graph'] else 0} "
             f"notes per path; synth opened in {res['synth_open_s']} s",
             "",
             "| path | graph median | graph p95 | graph max | to sound median | to sound p95 | to sound max |",
             "|---|---|---|---|---|---|---|"]
    for path, label in (("direct", "send() (MIDI thru)"), ("player", "Player (a take)")):
        g, s = res[path]["graph"], res[path]["to_sound"]
        if g is None:
            lines.append(f"| {label} | - | - | - | - | - | - |")
            continue
        lines.append(f"| {label} | {g['median_ms']} ms | {g['p95_ms']} ms | {g['max_ms']} ms | "
                     f"{s['median_ms']} ms | {s['p95_ms']} ms | {s['max_ms']} ms |")
    verdict = "meets" if res["meets_target"] else "MISSES"
    lines += ["", f"worst note-on to sound: {res['worst_to_sound_ms']} ms, {verdict} the "
              f"{res['target_ms']:g} ms target (missed onsets: {res['missed']})"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--notes", type=int, default=100, help="notes per path (default 100)")
    ap.add_argument("--period", type=int, default=256, help="JACK period in frames (default 256)")
    ap.add_argument("--rate", type=int, default=48000, help="sample rate (default 48000)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "synth_latency.json"))
    args = ap.parse_args()
    proc, _server = _start_jack(args.period, args.rate)
    try:
        res = measure(args.notes, args.period, args.rate)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    import platform

    res["date"] = utc_stamp()
    res["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    return write_and_print(res, args.out, args.json, table)


if __name__ == "__main__":
    sys.exit(main())
