"""Benchmark of the live engine (not a test).

    python bench/live_bench.py            # table + bench/results/live_bench.json
    python bench/live_bench.py --json     # JSON on stdout
    python bench/live_bench.py --quick    # fewer repeats, no JACK part

1. Time to first note: trigger -> first note-on handed to the Player, with the
   model state primed by 64 and by 4096 tokens of real music, on one CPU
   thread. RWKV-7 runs the real LiveSession (grammar + time-floor masks,
   K=1), once with its fused native step and once with the eager PyTorch
   step (``model.step(impl="torch")``), the fair match for the peer: a
   Transformer of the same size (trainer.baselines) in eager PyTorch, its
   KV cache preallocated and primed the same way before the clock starts,
   timed on the same number of sampled tokens.
   "Cold" is an explicit trigger (button, key): sampling starts at the
   trigger. The silence trigger's answer is prepared during the pause, so
   at the trigger it only has to be handed to the Player; that is timed too.
2. Generation speed: 2 bars at 120 BPM (4 s of music) from a primed state,
   as a multiple of real time (K=1 and K=4).
3. Note-on jitter through JACK: the Player sends notes at planned times to a
   JACK port on a private dummy server with a 64-frame period; a second
   client stamps their arrival. p50/p99 of |arrival - planned - median lag|,
   with the process idle and while another thread samples takes back to back
   (the engine's load while a take plays), a few runs each: the tail of one
   run depends on what else the machine does.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench._report import utc_stamp, write_and_print  # noqa: E402
from bench.render_figures import live_table  # noqa: E402
from copilot_app.engine.clock import FakeClock, InternalGrid  # noqa: E402
from copilot_app.engine.player import PlannedNote, Player  # noqa: E402
from copilot_app.engine.runtime_info import bundled_model  # noqa: E402
from copilot_app.engine.session import LiveSession, SessionSettings  # noqa: E402
from model import RWKV7, RWKVConfig, load_checkpoint  # noqa: E402
from model.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, SamplingParams, sample  # noqa: E402
from model.tokens.config import build_tokenizer  # noqa: E402
from model.tokens.midi_io import encode_file  # noqa: E402

DATA = ROOT / "tests" / "data"


class NullPort:
    def send(self, msg) -> None:
        pass


def music_tokens(n: int) -> list[int]:
    """n token ids of real music (the test pieces, repeated), ending on a note."""
    vocab = build_tokenizer().vocab
    pool: list[int] = []
    for path in sorted(DATA.glob("*.mid")):
        pool += [vocab[t] for t in encode_file(path)]
    ids: list[int] = []
    while len(ids) < n:
        ids += pool
    ids = ids[:n]
    while not build_tokenizer()[ids[-1]].startswith("Duration"):  # end on a complete note
        ids.pop()
    return ids


def load_rwkv() -> tuple[RWKV7, str]:
    path = bundled_model()
    if path is not None:
        model, _ = load_checkpoint(path)
        return model.eval(), f"bundled {path.name}"
    torch.manual_seed(0)
    model = RWKV7(RWKVConfig(vocab_size=len(build_tokenizer().vocab))).eval()
    return model, "default size, random weights (no bundled model yet)"


def primed_session(model: RWKV7, n_ctx: int, k: int = 1) -> tuple[LiveSession, FakeClock]:
    """A session that has heard ``n_ctx`` tokens of real music, played note by
    note through the live path (encoder -> model state), as a player would."""
    from copilot_app.engine.midi_input import Routed
    from model.tokens.midi_io import load_piano_piece

    clock = FakeClock()
    session = LiveSession(model, Player(NullPort(), clock), InternalGrid(120.0, origin=0.0), clock,
                          SessionSettings(seed=0, start_on="now", variations=k, bars=2,
                                          trigger_beats=0))
    offset_q = 0.0
    down: set[int] = set()
    pieces = [load_piano_piece(p).events for p in sorted(DATA.glob("*.mid"))]
    while session.stats.tokens_in < n_ctx:
        for events in pieces:
            end_q = offset_q
            for ev in events:
                if ev.kind not in ("note_on", "note_off", "pedal"):
                    continue
                q = offset_q + ev.time
                t = session.time_at_quarters(q)
                clock.set(t)
                kind = "note_off" if ev.kind == "note_on" and ev.b == 0 else ev.kind
                session.handle(Routed(kind, t, pitch=ev.a, velocity=ev.b, value=ev.a))
                if kind == "note_on":
                    down.add(ev.a)
                elif kind == "note_off":
                    down.discard(ev.a)
                end_q = max(end_q, q)
                if session.stats.tokens_in >= n_ctx:
                    break
            offset_q = (int(end_q // 4) + 2) * 4.0  # the next piece starts on a fresh bar
            if session.stats.tokens_in >= n_ctx:
                break
    t = clock.now()
    for pitch in sorted(down):  # the player lifts both hands
        session.handle(Routed("note_off", t, pitch=pitch))
    session.handle(Routed("pedal", t, value=0))
    clock.set(session.time_at_quarters(offset_q))
    session.poll()
    session.settings.trigger_beats = 2.0
    return session, clock


def rwkv_first_note(model: RWKV7, n_ctx: int, repeats: int, impl: str = "auto") -> tuple[float, int]:
    """Median time to first note of an explicit trigger, and the median number
    of model steps taken before that note (the peer is timed on as many).
    ``impl``: the model step the session runs ("auto": the fused native one;
    "torch": eager PyTorch)."""
    session, clock = primed_session(model, n_ctx)
    session.settings.prepare_ahead = False
    steps = [0]
    real_step = model.step

    def counting_step(*a, **kw):
        steps[0] += 1
        return real_step(*a, **{**kw, "impl": impl})

    real_schedule = session.player.schedule
    counts: list[int] = []
    first_seen: list[bool] = []

    def schedule(notes):
        if not first_seen:
            first_seen.append(True)
            counts.append(steps[0])
        return real_schedule(notes)

    times = []
    model.step = counting_step  # instance attribute: instrumentation for this bench only
    session.player.schedule = schedule
    try:
        for i in range(repeats):
            session.settings.seed = i
            steps[0] = 0
            first_seen.clear()
            take = session.trigger(clock.now())  # generation forks the state: the context is untouched
            if take.first_note_latency_s is not None:
                times.append(take.first_note_latency_s)
    finally:
        del model.step
        session.player.schedule = real_schedule
    return statistics.median(times), int(statistics.median(counts))


def rwkv_first_note_after_pause(model: RWKV7, n_ctx: int, repeats: int) -> float:
    """The silence trigger's path: the answer is prepared during the pause."""
    import mido

    from copilot_app.engine.midi_input import Stamped, route

    session, clock = primed_session(model, n_ctx)
    session.settings.start_on = "bar"
    times = []
    for i in range(repeats):
        session.settings.seed = i
        t = clock.now()
        session.handle(route(Stamped(t, mido.Message("note_on", note=60 + i % 12, velocity=80))))
        session.handle(route(Stamped(t + 0.4, mido.Message("note_off", note=60 + i % 12))))
        take, step = None, 0.02
        for _ in range(1000):  # the engine's poll loop on a fake clock (20 s at most)
            t += step
            clock.set(t)
            take = session.poll(t)
            if take is not None:
                break
        if take is None:
            raise RuntimeError("the silence trigger never fired")
        if take.first_note_latency_s is not None and take.prepared:
            times.append(take.first_note_latency_s)
        clock.set(session.time_at_quarters(take.start_quarters + 8.0))
    return statistics.median(times) if times else float("nan")


def transformer_first_note(n_ctx: int, n_tokens: int, target_params: int, repeats: int) -> tuple[float, str]:
    from trainer.baselines import TransformerConfig, TransformerLM
    from trainer.models import matched_width

    vocab = len(build_tokenizer().vocab)
    width = matched_width("transformer", target_params, vocab, 6)
    torch.manual_seed(0)
    model = TransformerLM(TransformerConfig(vocab, 6, width, max_len=n_ctx + 512)).eval()
    ids = music_tokens(n_ctx)
    with torch.no_grad():
        # Allocated once, outside the timed region, for the context and the answer.
        state = model.init_state(1, capacity=len(ids) + n_tokens)
        for token in ids:  # prime the KV cache token by token, as a live session would
            logits, state = model.step(torch.tensor([token]), state)
    params = SamplingParams(temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P)
    times = []
    for i in range(repeats):
        gen = torch.Generator().manual_seed(i)
        t0 = time.perf_counter()
        cache, lg = state, logits  # a fork is the context's length: each answer overwrites the last one's keys
        for _ in range(n_tokens):
            tok = sample(lg, params, generator=gen)
            lg, cache = model.step(tok, cache)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), f"Transformer 6x{width} ({model.num_params() / 1e6:.1f}M)"


def generation_speed(model: RWKV7, k: int, repeats: int) -> float:
    session, clock = primed_session(model, 512, k=k)
    session.settings.prepare_ahead = False
    rates = []
    for i in range(repeats):
        session.settings.seed = i
        t0 = time.perf_counter()
        session.trigger(clock.now())
        rates.append(4.0 / (time.perf_counter() - t0))  # 2 bars of 4/4 at 120 BPM = 4 s
    return statistics.median(rates)


def sampling_load(model: RWKV7) -> Callable[[threading.Event], None]:
    """A background job like the engine's while a take plays: sampling takes
    (K=4, 2 bars) back to back until ``stop`` is set."""
    session, clock = primed_session(model, 256, k=4)
    session.settings.prepare_ahead = False

    def run(stop: threading.Event) -> None:
        seed = 0
        while not stop.is_set():
            session.settings.seed = seed
            session.trigger(clock.now())
            seed += 1

    return run


def jack_jitter(n_notes: int = 300, period: int = 64,
                load: Callable[[threading.Event], None] | None = None) -> dict | None:
    """Note-on jitter through a private JACK dummy server, or None without jackd.
    With ``load``, that job runs in another thread meanwhile (GIL contention)."""
    jackd = shutil.which("jackd")
    if jackd is None:
        return None
    server = f"copilot-bench-{os.getpid()}"
    env_before = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "COPILOT_MIDI_API")}
    os.environ["JACK_DEFAULT_SERVER"] = server
    os.environ["COPILOT_MIDI_API"] = "UNIX_JACK"
    proc = subprocess.Popen([jackd, "-n", server, "-S", "--no-realtime", "-d", "dummy", "-r", "48000",
                             "-p", str(period)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from copilot_app.engine import midi_ports

        deadline = time.monotonic() + 10
        while not midi_ports.jack_server_running():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        import rtmidi

        out = midi_ports.open_output("bench out", virtual=True)
        source = [n for n in midi_ports.list_ports()[0] if "bench out" in n][0]
        # The receiver stamps each note-on in rtmidi's callback, on JACK's
        # thread, as it arrives. (The app's inputs poll instead: a Python
        # callback there can deadlock against a thread opening a JACK client,
        # which this measurement never does while the callback is set.)
        arrivals: dict[int, float] = {}

        def stamp(event, _data) -> None:
            data = event[0]
            if len(data) == 3 and data[0] & 0xF0 == 0x90 and data[2] > 0:
                arrivals[data[1] * 1000 + data[2]] = time.monotonic()

        rx = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="bench rx")
        rx.open_port(rx.get_ports().index(source))
        rx.set_callback(stamp)
        time.sleep(0.5)
        player = Player(out)
        player.start()
        stop = threading.Event()
        worker = threading.Thread(target=load, args=(stop,), daemon=True) if load else None
        if worker is not None:
            worker.start()
        t0 = time.monotonic() + 0.2
        planned = {}
        notes = []
        for i in range(n_notes):
            pitch, vel = 40 + i % 60, 1 + i // 60
            start = t0 + i * 0.02
            planned[pitch * 1000 + vel] = start
            notes.append(PlannedNote(pitch, vel, start, start + 0.01))
        player.schedule(notes)
        time.sleep(0.2 + n_notes * 0.02 + 0.5)
        stop.set()
        if worker is not None:
            worker.join()
        player.close()
        time.sleep(0.2)
        rx.cancel_callback()
        time.sleep(0.05)  # let a callback in flight finish before JACK closes the client
        rx.close_port()
        rx.delete()
        out.close()
        lags = [arrivals[k] - planned[k] for k in planned if k in arrivals]
        if len(lags) < n_notes * 0.9:
            return {"received": len(lags), "sent": n_notes}
        median_lag = statistics.median(lags)
        dev = sorted(abs(x - median_lag) for x in lags)
        return {"period_frames": period, "sample_rate": 48000, "notes": n_notes, "received": len(lags),
                "median_lag_ms": median_lag * 1000, "jitter_p50_ms": dev[len(dev) // 2] * 1000,
                "jitter_p99_ms": dev[min(len(dev) - 1, int(len(dev) * 0.99))] * 1000}
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, no JACK part")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "live_bench.json"))
    ap.add_argument("--jack-only", action="store_true", help="only the JACK jitter part")
    ap.add_argument("--jack-runs", type=int, default=3,
                    help="JACK jitter runs per condition (the tail varies run to run on a shared VM)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    repeats = 5 if args.quick else 25
    model, model_desc = load_rwkv()
    if args.jack_only:
        load = sampling_load(model)
        res = {"idle": [jack_jitter() for _ in range(args.jack_runs)],
               "sampling": [jack_jitter(load=load) for _ in range(args.jack_runs)]}
        for cond, runs in res.items():
            print(cond, [(round(r["jitter_p50_ms"], 3), round(r["jitter_p99_ms"], 3)) if r and "jitter_p99_ms" in r
                         else r for r in runs])
        return 0
    n_params = model.num_params()

    results: dict = {"model": model_desc, "params": n_params, "threads": 1, "quick": args.quick,
                     "measured": utc_stamp(), "load_avg_start": os.getloadavg(),
                     "machine": platform.machine(), "python": platform.python_version(),
                     "torch": torch.__version__, "ttfn_ms": {}, "ttfn_eager_ms": {}, "peer_ttfn_ms": {},
                     "ttfn_after_pause_ms": {}}
    # The peer is timed on as many model steps as RWKV-7 took before its
    # first note (the Bar/TimeSig steps to reach the current bar, Position, Pitch).
    results["steps_to_first_note"] = {}
    for n_ctx in (64, 4096):
        t, needed = rwkv_first_note(model, n_ctx, repeats)
        results["ttfn_ms"][str(n_ctx)] = t * 1000
        results["steps_to_first_note"][str(n_ctx)] = needed
        results["ttfn_eager_ms"][str(n_ctx)] = rwkv_first_note(model, n_ctx, repeats, impl="torch")[0] * 1000
        results["ttfn_after_pause_ms"][str(n_ctx)] = rwkv_first_note_after_pause(model, n_ctx, repeats) * 1000
        peer_t, peer_desc = transformer_first_note(n_ctx, needed, n_params, max(5, repeats // 2))
        results["peer_ttfn_ms"][str(n_ctx)] = peer_t * 1000
        results["peer"] = peer_desc
    results["ttfn_ratio_4096_64"] = results["ttfn_ms"]["4096"] / results["ttfn_ms"]["64"]
    results["ttfn_eager_ratio_4096_64"] = results["ttfn_eager_ms"]["4096"] / results["ttfn_eager_ms"]["64"]
    results["peer_ratio_4096_64"] = results["peer_ttfn_ms"]["4096"] / results["peer_ttfn_ms"]["64"]
    results["realtime_x"] = {"k1": generation_speed(model, 1, max(3, repeats // 5)),
                             "k4": generation_speed(model, 4, max(3, repeats // 5))}
    results["jack"] = None
    if not args.quick and shutil.which("jackd"):
        load = sampling_load(model)
        results["jack"] = {"idle": [jack_jitter() for _ in range(args.jack_runs)],
                           "sampling": [jack_jitter(load=load) for _ in range(args.jack_runs)]}

    results["load_avg_end"] = os.getloadavg()

    def table(r: dict) -> str:
        jack_note = "" if r["jack"] else "\n(JACK part skipped: --quick or no jackd)"
        return (f"live engine, {r['model']}, {r['params'] / 1e6:.2f}M params, 1 CPU thread; "
                f"peer: {r['peer']}\n{live_table(r)}{jack_note}\nJSON: {args.out}")

    return write_and_print(results, args.out, args.json, table)


if __name__ == "__main__":
    sys.exit(main())
