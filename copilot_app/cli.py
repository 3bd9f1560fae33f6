"""Command-line interface: the GUI by default, subcommands for headless use.

The contract (ARCHITECTURE.md, users and scripts rely on it)::

    composer-copilot                        # GUI
    composer-copilot continue IN.mid -o OUT.mid [--bars 2] ...
    composer-copilot listen --in PORT --out PORT [--virtual]
    composer-copilot train --data DIR... --out DIR [--base PATH]
    composer-copilot eval --model PATH --data DIR [--json]
    composer-copilot tokenize FILE.mid [--stream]
    composer-copilot bench [--json]

Each subcommand names the module that owns it; model/command_runner.py runs it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from copilot_app import __version__
from model.command_runner import run
from model.defaults import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from model.scales import SCALES
from model.steering import REGISTER_MARGIN, Steering, check_key, parse_register
from trainer.cli_args import add_eval_args, add_train_args

PROG = "composer-copilot"

# command -> "module:function"; the function takes the parsed Namespace and
# returns an exit code.
COMMANDS: dict[str, str] = {
    "gui": "copilot_app.ui.app:run_gui",
    "continue": "copilot_app.engine.offline:run_continue",
    "listen": "copilot_app.engine.headless:run_listen",
    "train": "trainer.cli:run_train",
    "eval": "trainer.cli:run_eval",
    "tokenize": "model.tokens.cli:run_tokenize",
    "bench": "copilot_app.bench_runner:run_bench",
}


def _add_model_args(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    # Subcommands repeat --model/--device; SUPPRESS keeps a value given before
    # the subcommand name from being overwritten by the subparser's default.
    parser.add_argument("--model", metavar="PATH",
                        default=None if top_level else argparse.SUPPRESS,
                        help="checkpoint to use (default: the bundled model)")
    parser.add_argument("--device", default="auto" if top_level else argparse.SUPPRESS,
                        help="auto (GPU when there is one), cpu, cuda or cuda:N")


def _velocity(text: str) -> int:
    """--velocity: a MIDI velocity 1-127 (a clear usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 127:
        raise argparse.ArgumentTypeError(f"{value} is not a MIDI velocity (1-127)")
    return value


def _add_style_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style", metavar="PATH",
                        help="answer in a learned style: a style file (or the folder `train --style` "
                             "wrote) made for this model")


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    # Seed guidance: 0.5-0.7 conservative, 0.8-0.9 balanced, 1.0-1.5 adventurous.
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"sampling temperature (default {DEFAULT_TEMPERATURE})")
    parser.add_argument("--top-p", type=float, default=DEFAULT_TOP_P,
                        help=f"nucleus sampling mass (default {DEFAULT_TOP_P})")
    parser.add_argument("--top-k", type=int, default=0,
                        help="keep only the k most likely tokens (0: off)")
    parser.add_argument("--bars", type=int, default=2, help="bars to continue (default 2)")
    parser.add_argument("--seed", type=int, help="seed for reproducible takes")
    _add_steering_args(parser)


def _checked(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises ValueError with one line."""
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _unit(text: str) -> float:
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"{value} is outside -1..1")
    return value


def _add_steering_args(parser: argparse.ArgumentParser) -> None:
    # The controls of model/steering.py; defaults are Steering's own.
    parser.add_argument("--key", type=_checked(check_key), default=Steering.key, metavar="KEY",
                        help="lock the answer to a scale: off (default), auto (the key of what was "
                             "played) or TONIC SCALE, e.g. 'D dorian', 'F# minor pentatonic' "
                             f"(scales: {', '.join(SCALES)})")
    parser.add_argument("--register", type=_checked(parse_register), default=(None, None), metavar="LOW-HIGH",
                        help="lowest-highest pitch of the answer, as MIDI numbers or names (48-84, C3-C6); "
                             f"auto (default): the phrase's range widened by {REGISTER_MARGIN} semitones; "
                             "off: the whole piano")
    parser.add_argument("--density", type=_checked(_unit), default=Steering.density, metavar="D",
                        help="-1 sparser ... 0 (default) ... +1 busier: notes per bar relative to the phrase")
    parser.add_argument("--texture", type=_checked(_unit), default=Steering.texture, metavar="T",
                        help="-1 single line ... 0 as played (default) ... +1 chords: notes struck together")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; `--help` works at every level."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Composer Copilot: play a phrase, hear the next bars. "
                    "Without a subcommand the desktop app starts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    _add_model_args(parser, top_level=True)
    parser.add_argument("--screenshot", metavar="PNG",
                        help="GUI: save a picture of the main window once shown, then quit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("continue", help="continue a .mid file and write the result")
    p.add_argument("input", metavar="IN.mid", help="the phrase to continue")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mid",
                   help="where to write the result (K files for K variations)")
    _add_sampling_args(p)
    p.add_argument("--context-bars", type=int, default=4,
                   help="how many of the file's last bars the model hears (default 4)")
    p.add_argument("--variations", type=int, default=1, metavar="K",
                   help="write K different continuations")
    p.add_argument("--only-new", action="store_true",
                   help="write only the new bars, not context + continuation")
    p.add_argument("--velocity", type=_velocity, default=None, metavar="V",
                   help="every new note at velocity V (1-127); default: follow the file's dynamics")
    _add_style_arg(p)
    _add_model_args(p)

    p = sub.add_parser("listen", help="live mode without the GUI: MIDI in, continuations out",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit codes:\n"
                              "  0  stopped (Ctrl-C / SIGTERM) with its ports in place\n"
                              "  1  could not start: a bad port, model or value (one line says which)\n"
                              "  2  command-line usage error\n"
                              "  3  stopped while the MIDI server or a port was gone\n"
                              "  4  gave up: the server or a port stayed away longer than --give-up\n"
                              "A lost MIDI server (JACK) or port is reported in one line; the ports come\n"
                              "back by themselves when it returns, and the session is kept.")
    p.add_argument("--in", dest="in_port", metavar="PORT", help="MIDI input port name")
    p.add_argument("--out", dest="out_port", metavar="PORT", help="MIDI output port name")
    p.add_argument("--virtual", action="store_true",
                   help="create virtual ports 'Composer Copilot In/Out' for a DAW to connect to")
    p.add_argument("--list-ports", action="store_true", help="list MIDI ports and exit")
    p.add_argument("--tempo", type=float, default=120.0,
                   help="internal tempo in BPM (quarter notes a minute, as DAWs count)")
    p.add_argument("--meter", default="4/4", help="internal meter, e.g. 3/4")
    p.add_argument("--trigger-beats", type=float, default=2.0,
                   help="answer after this many beats of silence (0: only on the trigger key)")
    p.add_argument("--trigger-key", type=int, metavar="NOTE",
                   help="a key (MIDI note number) that asks for an answer instead of sounding")
    p.add_argument("--metronome", action="store_true", help="click on every beat (GM drum channel)")
    p.add_argument("--midi-clock", action="store_true",
                   help="follow the MIDI clock (Start/Stop/Song Position) arriving on the input")
    p.add_argument("--variations", type=int, default=1, metavar="K")
    p.add_argument("--velocity", type=_velocity, default=None, metavar="V",
                   help="play every answer note at velocity V (1-127); default: follow your dynamics")
    p.add_argument("--session", metavar="FILE",
                   help="save the session (takes, accepted variations, what was played, settings) to FILE "
                        "as it changes; an existing FILE is continued: its takes and last bars come back, "
                        "and the settings are the ones given now")
    p.add_argument("--give-up", type=float, metavar="SECONDS",
                   help="exit (code 4) when the MIDI server or a port stays away this long "
                        "(default: wait for it forever)")
    _add_sampling_args(p)
    _add_style_arg(p)
    _add_model_args(p)

    p = sub.add_parser("train", help="train or fine-tune a model on token corpora or MIDI folders")
    add_train_args(p)

    p = sub.add_parser("eval", help="validation NLL and musical metrics of a model")
    add_eval_args(p)

    p = sub.add_parser("tokenize", help="print the REMI tokens and bar count of a .mid file")
    p.add_argument("file", metavar="FILE.mid")
    p.add_argument("--stream", action="store_true",
                   help="replay the file through the live streaming encoder (must match)")

    p = sub.add_parser("bench", help="run the benchmarks in bench/ and print their tables")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="benchmarks to run, e.g. model_bench (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    for subparser in sub.choices.values():
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                               help="show tracebacks for errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of main.py and the console script."""
    args = build_parser().parse_args(argv)
    command = args.command or "gui"
    return run(PROG, command, COMMANDS[command], args)


def main_gui() -> int:
    """Entry point of the `composer-copilot` GUI launcher."""
    return main(sys.argv[1:])
