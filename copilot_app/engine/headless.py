"""`composer-copilot listen`: the live loop without the GUI.

Opens the MIDI ports (or creates virtual ones for a DAW), runs the engine until
Ctrl-C or SIGTERM, and logs one line per take. On the way out every note the
app started gets its note-off, and all channels get All Notes Off.

When the MIDI server (JACK) or a named port goes away, one line says so
within a second; nothing is sent while it is gone, the session (model state,
takes) is kept, and the ports come back by themselves with the server or
device (virtual ports are created again). Exit codes (also in ``--help``):

    0  stopped (Ctrl-C / SIGTERM) with its ports in place
    1  could not start: a bad port, model or argument value (one line says which)
    2  command-line usage error
    3  stopped while the MIDI server or a port was gone
    4  gave up: the server or a port stayed away longer than --give-up seconds
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import asdict

from copilot_app.engine import midi_ports
from copilot_app.engine.clock import InternalGrid, Meter, MidiClockGrid, MonotonicClock
from copilot_app.engine.live import LiveEngine
from copilot_app.engine.model_loader import load_model
from copilot_app.engine.session import SessionSettings, Take
from model.steering import steering_from_args
from model.style import load_style_for

EXIT_STOPPED = 0
EXIT_STOPPED_WHILE_LOST = 3
EXIT_GAVE_UP = 4


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
    style = load_style_for(args.style, model) if getattr(args, "style", None) else None
    settings = SessionSettings(bars=args.bars, temperature=args.temperature, top_p=args.top_p,
                               top_k=args.top_k, variations=args.variations,
                               trigger_beats=args.trigger_beats, trigger_key=args.trigger_key,
                               seed=args.seed, fixed_velocity=getattr(args, "velocity", None),
                               **asdict(steering_from_args(args)))
    # Ports are kept: unplug and replug a keyboard, or restart the JACK server, and they come back.
    api = midi_ports.choose_api()
    out = (midi_ports.PortKeeper("output", args.out_port, api=api) if args.out_port
           else midi_ports.PortKeeper("output", midi_ports.VIRTUAL_OUT, api=api, virtual=True))
    clock = MonotonicClock()
    grid = (MidiClockGrid(meter, fallback_bpm=args.tempo) if args.midi_clock
            else InternalGrid(args.tempo, meter, origin=clock.now()))
    engine = LiveEngine(model, out, grid, settings, clock, model_name=path.stem, on_take=_log_take,
                        on_error=lambda m: print(f"composer-copilot: error: {m}", file=sys.stderr))
    if style is not None:
        engine.set_style(style)  # queued: applied before the first note is handled
    session_file = getattr(args, "session", None)
    if session_file:
        # The flags given now are the settings (they are saved with it); the
        # file's takes, numbers and last bars come back. Queued like the style.
        engine.use_session(session_file, load=True, apply_settings=False)
    try:
        inp = (midi_ports.PortKeeper("input", args.in_port, engine.midi_callback, api=api) if args.in_port
               else midi_ports.PortKeeper("input", midi_ports.VIRTUAL_IN, engine.midi_callback, api=api,
                                          virtual=True))
    except Exception:
        out.close()
        raise
    ports = midi_ports.LivePorts([inp, out], api, on_lost=engine.release_held)
    give_up = getattr(args, "give_up", None)
    code = EXIT_STOPPED
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on {inp.name} -> {out.name} with {path.name}"
          f"{f' in the style {style.name}' if style else ''}, "
          f"{args.tempo:g} BPM {args.meter}{f'; session {session_file}' if session_file else ''}; "
          "Ctrl-C to stop", flush=True)
    engine.start()
    engine.set_metronome(args.metronome)
    try:
        # A short timed wait lets the signal handler run promptly and a lost server be seen within a second.
        while not stop.wait(midi_ports.LivePorts.CHECK_S):
            ports.check(report=lambda line: print(line, flush=True))
            down = ports.down_since
            if give_up is not None and down is not None and time.monotonic() - down >= give_up:
                print(f"composer-copilot: error: MIDI server or port gone for {give_up:g} s; giving up",
                      file=sys.stderr, flush=True)
                code = EXIT_GAVE_UP
                break
        else:
            if not ports.healthy:
                code = EXIT_STOPPED_WHILE_LOST
    finally:
        inp.close()
        engine.close()  # note-offs for everything started (dropped if the output is gone), then panic
        out.close()
        ports.close()
    return code
