"""`composer-copilot listen`: the live loop without the GUI.

Opens the MIDI ports (or creates virtual ones for a DAW), runs the engine until
Ctrl-C or SIGTERM, and logs one line per take. On the way out every note the
app started gets its note-off, and all channels get All Notes Off.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from copilot_app.engine import midi_ports
from copilot_app.engine.clock import InternalGrid, Meter, MidiClockGrid, MonotonicClock
from copilot_app.engine.live import LiveEngine
from copilot_app.engine.model_loader import load_model
from copilot_app.engine.session import SessionSettings, Take


def _print_ports() -> int:
    inputs, outputs = midi_ports.list_ports()
    print("MIDI inputs:")
    for name in inputs or ["(none)"]:
        print(f"  {name}")
    print("MIDI outputs:")
    for name in outputs or ["(none)"]:
        print(f"  {name}")
    return 0


def _log_take(take: Take) -> None:
    counts = ", ".join(str(len(v)) for v in take.variations)
    latency = (f"{take.first_note_latency_s * 1000:.1f} ms to first note"
               if take.first_note_latency_s is not None else "silent answer")
    print(f"take {take.number}: {counts} notes in {len(take.variations)} variation(s), "
          f"from beat {take.start_quarters:g}; {latency}", flush=True)


def run_listen(args: argparse.Namespace) -> int:
    if args.list_ports:
        return _print_ports()
    if not args.virtual and not (args.in_port and args.out_port):
        raise ValueError("give --in PORT and --out PORT, or --virtual (see --list-ports)")
    meter = Meter.parse(args.meter)
    model, _meta, path = load_model(getattr(args, "model", None), getattr(args, "device", "auto"))
    settings = SessionSettings(bars=args.bars, temperature=args.temperature, top_p=args.top_p,
                               top_k=args.top_k, variations=args.variations,
                               trigger_beats=args.trigger_beats, trigger_key=args.trigger_key,
                               seed=args.seed)
    # Named device ports are kept: unplug and replug a keyboard and it comes back.
    out = (midi_ports.PortKeeper("output", args.out_port) if args.out_port
           else midi_ports.open_output(None, virtual=True))
    clock = MonotonicClock()
    grid = (MidiClockGrid(meter, fallback_bpm=args.tempo) if args.midi_clock
            else InternalGrid(args.tempo, meter, origin=clock.now()))
    engine = LiveEngine(model, out, grid, settings, clock, model_name=path.stem, on_take=_log_take,
                        on_error=lambda m: print(f"composer-copilot: error: {m}", file=sys.stderr))
    inp = (midi_ports.PortKeeper("input", args.in_port, engine.midi_callback) if args.in_port
           else midi_ports.open_input(None, engine.midi_callback, virtual=True))
    keepers = [p for p in (inp, out) if isinstance(p, midi_ports.PortKeeper)]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on {inp.name} -> {out.name} with {path.name}, "
          f"{args.tempo:g} BPM {args.meter}; Ctrl-C to stop", flush=True)
    engine.start()
    engine.set_metronome(args.metronome)
    try:
        while not stop.wait(1.0):  # a timed wait lets the signal handler run promptly
            for keeper in keepers:
                change = keeper.check()
                if change:
                    print(f"MIDI {keeper.kind} {keeper.name}: {'disconnected' if change == 'lost' else 'reconnected'}",
                          flush=True)
    finally:
        inp.close()
        engine.close()  # note-offs for everything started, then panic
        out.close()
    return 0
