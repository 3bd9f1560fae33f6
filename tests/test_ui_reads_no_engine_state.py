"""The GUI is a view: no module in copilot_app/ui reads or writes the engine's state.

The engine thread owns the session (model state, encoder, grid, takes,
Player); the GUI sends commands (``LiveEngine`` methods that only enqueue)
and renders the immutable snapshots the engine sends back. Checked
statically, like the layering test checks imports:

* no attribute of the engine's inner objects is named anywhere in ui/
  (``.session``, ``.runner``, ``.grid``, ``.player``, ``.metronome``, ...);
* the only attributes taken of an ``engine`` are its commands;
* ui/ imports no mutable engine object (``LiveSession``, ``SessionModel``, ...).
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UI = REPO / "copilot_app" / "ui"
# The engine's own objects: only the engine thread may touch them.
ENGINE_INSIDES = {"session", "runner", "grid", "player", "metronome", "encoder", "track", "library",
                  "cancel_take", "_call", "_inbox", "stats", "_takes"}
# What the GUI may do with a LiveEngine: commands that put a callable in its inbox.
ENGINE_COMMANDS = {"trigger", "open_phrase", "set_model", "audition", "next_variation", "previous_variation",
                   "accept", "discard", "stop_playback", "set_tempo", "set_grid", "update_settings",
                   "set_metronome", "panic", "publish", "midi_callback", "start", "close", "release_held",
                   "undo_discard", "use_session", "new_session", "regenerate", "more_like_this",
                   "set_style", "keep_styles_ready"}
MUTABLE_ENGINE_OBJECTS = {"LiveSession", "ModelRunner", "SessionModel", "InternalGrid", "MidiClockGrid",
                          "Player", "Metronome", "StreamingEncoder"}


def offences(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in ENGINE_INSIDES:
                found.append(f"{name}:{node.lineno} uses .{node.attr}")
            base = node.value
            base_name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if base_name == "engine" and node.attr not in ENGINE_COMMANDS:
                found.append(f"{name}:{node.lineno} reads engine.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("copilot_app.engine"):
            for alias in node.names:
                if alias.name in MUTABLE_ENGINE_OBJECTS:
                    found.append(f"{name}:{node.lineno} imports {alias.name}")
    return found


def test_no_ui_module_reads_engine_state():
    files = sorted(UI.glob("*.py"))
    assert len(files) > 10
    found = [o for p in files for o in offences(p.read_text(), str(p.relative_to(REPO)))]
    assert not found, found


def test_the_engine_commands_exist():
    from copilot_app.engine.live import LiveEngine

    missing = [c for c in ENGINE_COMMANDS if not callable(getattr(LiveEngine, c, None))]
    assert not missing, missing


def test_the_check_would_catch_a_view_reading_engine_state():
    # Guard against a checker that can never fail: what the old bridge and window did.
    old = ("def quarters_now(self):\n    return self.engine.session.quarters_at(self.clock.now())\n"
           "def tempo(self):\n    return self.engine.session.grid.bpm\n"
           "def take_done(self, session, take):\n    self.files.add(take, session.grid.meter)\n"
           "from copilot_app.engine.session import LiveSession\n"
           "def panic(self):\n    self.engine.metronome.player.cancel()\n")
    found = offences(old, "old.py")
    assert any("engine.session" in o for o in found)
    assert any(".grid" in o for o in found) and any("LiveSession" in o for o in found)
    assert any(".player" in o for o in found)
    assert offences("def ok(self):\n    self.bridge.engine.trigger()\n", "ok.py") == []
