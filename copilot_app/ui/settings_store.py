"""Every QSettings key of the window, typed, with its default, in one place.

The defaults are not written here a second time: the sampling, trigger and
steering ones come from the engine's ``SessionSettings`` (except the window's 3
variations), the tempo and meter from
the engine's timeline. A key reads back as its default's type (QSettings
hands back strings from an ini file), and a value that does not parse
falls back to the default instead of breaking start-up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from copilot_app.engine.clock import Meter
from copilot_app.engine.session import SessionSettings
from copilot_app.engine.session_model import DEFAULT_BPM
from copilot_app.engine.synth_output import BUILTIN

T = TypeVar("T")
_ENGINE = SessionSettings()
_METER = Meter()


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    default: T

    def parse(self, raw: object) -> T:
        kind = type(self.default)
        if raw is None:
            return self.default
        try:
            if kind is bool:
                if isinstance(raw, str):
                    return raw.lower() in ("1", "true", "yes", "on")  # type: ignore[return-value]
                return bool(raw)  # type: ignore[return-value]
            if kind in (int, float, str):
                return kind(raw)  # type: ignore[return-value, call-arg]
        except (TypeError, ValueError):
            return self.default
        return raw  # type: ignore[return-value]


class Keys:
    """The keys (see module docstring); ``name`` is what the settings file holds."""

    GEOMETRY: Key[QByteArray | None] = Key("window/geometry", None)
    BPM = Key("time/bpm", DEFAULT_BPM)
    METER = Key("time/meter", f"{_METER.numerator}/{_METER.denominator}")
    CLOCK = Key("time/clock", "internal")
    METRONOME = Key("time/metronome", False)
    TRIGGER_MODE = Key("trigger/mode", "silence")
    TRIGGER_BEATS = Key("trigger/beats", _ENGINE.trigger_beats)
    BARS = Key("sampling/bars", _ENGINE.bars)
    TEMPERATURE = Key("sampling/temperature", _ENGINE.temperature)
    TOP_P = Key("sampling/top_p", _ENGINE.top_p)
    TOP_K = Key("sampling/top_k", _ENGINE.top_k)
    # The window asks for 3 from the start (the engine's own default is 1, for
    # `listen`), so ◀/▶ Variation has something to step through at once.
    VARIATIONS = Key("sampling/variations", 3)
    # One velocity for every answer note, 0: follow the player's dynamics
    # (the engine's fixed_velocity None).
    FIXED_VELOCITY = Key("sampling/fixed_velocity", _ENGINE.fixed_velocity or 0)
    START_ON = Key("sampling/start_on", _ENGINE.start_on)
    # Steering (issue 19). A register bound of 0 is "auto" (the engine's None):
    # 0 is no piano key, and an ini file cannot hold a typed None.
    KEY = Key("steer/key", _ENGINE.key)
    REGISTER_LOW = Key("steer/register_low", 0 if _ENGINE.register_low is None else _ENGINE.register_low)
    REGISTER_HIGH = Key("steer/register_high", 0 if _ENGINE.register_high is None else _ENGINE.register_high)
    DENSITY = Key("steer/density", _ENGINE.density)
    TEXTURE = Key("steer/texture", _ENGINE.texture)
    ADVANCED = Key("ui/advanced", False)
    TYPING = Key("ui/typing", True)
    PORT_IN = Key("ports/in", "")
    PORT_OUT = Key("ports/out", BUILTIN)  # the built-in piano until the user picks another output
    THRU_BUILTIN = Key("ports/thru_builtin", True)    # MIDI thru to the built-in piano
    THRU_EXTERNAL = Key("ports/thru_external", False)  # MIDI thru to any other output
    MODEL_PATH = Key("model/path", "")
    STYLE_PATH = Key("model/style", "")  # "" = no style
    OPEN_DIR = Key("files/open_dir", "")  # the folder File > Open phrase… showed last


class SettingsStore:
    """The window's QSettings behind typed keys.

    Writes are dropped while the window restores its controls (restoring must
    not rewrite what it reads) and when ``persist`` is off (screenshots).
    """

    def __init__(self, settings: QSettings, persist: bool = True) -> None:
        self.qsettings = settings
        self.persist = persist
        self.restoring = False

    def get(self, key: Key[T]) -> T:
        return key.parse(self.qsettings.value(key.name))

    def put(self, key: Key[T], value: T) -> None:
        if self.persist and not self.restoring:
            self.qsettings.setValue(key.name, value)

    def sync(self) -> None:
        if self.persist:
            self.qsettings.sync()
