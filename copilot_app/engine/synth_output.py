"""The built-in piano: FluidSynth playing a General MIDI SoundFont, as one more output.

``SynthOutput`` has the interface every output of the Player has (the one
mido's ports have): ``send(msg)``, ``all_notes_off()``, ``close()``. So the
Player's bookkeeping (every note-on gets its note-off, panic silences every
channel) holds for it as for a MIDI port.

FluidSynth renders on its own audio thread (native code, never Python):

* on Linux through JACK when a JACK server runs (a client named
  ``Composer Copilot Piano`` whose ports connect to the system playback
  ports; the server's period sets the latency), else the default audio
  device (PulseAudio/PipeWire, then ALSA's "default");
* macOS: CoreAudio; Windows: WASAPI, then DirectSound.

The library is libfluidsynth (Debian: ``libfluidsynth3``), bound here with
ctypes; the sound is a SoundFont found on the system (Debian's
``fluid-soundfont-gm``: FluidR3_GM.sf2, MIT licence) or named by
``COPILOT_SOUNDFONT``. Nothing is downloaded. When the library, the
SoundFont or an audio device is missing, ``SynthOutput`` raises
``SynthUnavailable`` with one line saying which; the app goes on without it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from pathlib import Path

import mido

log = logging.getLogger(__name__)

BUILTIN = "builtin"              # the output menu's (and the saved setting's) name for it
BUILTIN_LABEL = "Built-in piano"
JACK_CLIENT = "Composer Copilot Piano"
PERIOD_FRAMES = 256              # asked of ALSA/PulseAudio; a JACK server sets its own
PERIODS = 2
DEFAULT_GAIN = 0.6               # FluidSynth's 0.2 is quiet for one piano; 0.6 leaves headroom for chords

# Where OS packages put a General MIDI SoundFont, best piano first.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",          # Debian/Ubuntu fluid-soundfont-gm (MIT)
    "/usr/share/soundfonts/FluidR3_GM.sf2",          # Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM2-2.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",          # Debian's alternatives link
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",            # Debian timgm6mb-soundfont
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)

_FLUID_FAILED = -1
_LOG_LEVELS = range(5)  # FLUID_PANIC .. FLUID_DBG


class SynthUnavailable(OSError):
    """The built-in sound cannot start; the message is one line for the status bar."""


def find_soundfont() -> Path | None:
    """``COPILOT_SOUNDFONT`` if set, else the first SoundFont the OS packages installed."""
    forced = os.environ.get("COPILOT_SOUNDFONT")
    if forced:
        return Path(forced)
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def audio_drivers() -> list[str]:
    """FluidSynth audio drivers to try, in order, on this platform now."""
    if sys.platform == "darwin":
        return ["coreaudio"]
    if sys.platform.startswith("win"):
        return ["wasapi", "dsound"]
    from copilot_app.engine.midi_ports import jack_server_running

    if jack_server_running():
        return ["jack"]
    return ["pulseaudio", "alsa"]


_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_LogFn = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _library() -> ctypes.CDLL:
    """libfluidsynth with the prototypes used here (loaded once)."""
    global _lib, _lib_error
    if _lib is not None:
        return _lib
    if _lib_error is not None:
        raise SynthUnavailable(_lib_error)
    names = [n for n in (ctypes.util.find_library("fluidsynth"), ctypes.util.find_library("fluidsynth-3"),
                         ctypes.util.find_library("libfluidsynth-3"), "libfluidsynth.so.3") if n]
    lib = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        _lib_error = "built-in piano: FluidSynth is not installed (Debian: apt install libfluidsynth3)"
        raise SynthUnavailable(_lib_error)
    p, i, s, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_double
    protos = {
        "new_fluid_settings": (p, []),
        "delete_fluid_settings": (None, [p]),
        "fluid_settings_setstr": (i, [p, s, s]),
        "fluid_settings_setint": (i, [p, s, i]),
        "fluid_settings_setnum": (i, [p, s, d]),
        "fluid_settings_getnum": (i, [p, s, ctypes.POINTER(d)]),
        "new_fluid_synth": (p, [p]),
        "delete_fluid_synth": (None, [p]),
        "fluid_synth_sfload": (i, [p, s, i]),
        "fluid_synth_program_select": (i, [p, i, i, i, i]),
        "fluid_synth_noteon": (i, [p, i, i, i]),
        "fluid_synth_noteoff": (i, [p, i, i]),
        "fluid_synth_cc": (i, [p, i, i, i]),
        "fluid_synth_pitch_bend": (i, [p, i, i]),
        "fluid_synth_program_change": (i, [p, i, i]),
        "fluid_synth_channel_pressure": (i, [p, i, i]),
        "fluid_synth_all_notes_off": (i, [p, i]),
        "fluid_synth_all_sounds_off": (i, [p, i]),
        "fluid_synth_get_active_voice_count": (i, [p]),
        "new_fluid_audio_driver": (p, [p, p]),
        "delete_fluid_audio_driver": (None, [p]),
        "fluid_set_log_function": (p, [i, p, p]),
    }
    for fname, (restype, argtypes) in protos.items():
        fn = getattr(lib, fname)
        fn.restype, fn.argtypes = restype, argtypes
    _lib = lib
    return lib


class _CollectLogs:
    """While opening, FluidSynth's messages go to a list (for the one-line error), then back to stderr.

    Only the opening thread logs meanwhile; the audio thread never calls Python.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib, self.lines = lib, []
        self._fn = _LogFn(lambda level, text, _data: self.lines.append(text.decode(errors="replace")))
        self._default = ctypes.cast(lib.fluid_default_log_function, ctypes.c_void_p)

    def __enter__(self) -> "_CollectLogs":
        for level in _LOG_LEVELS:
            self.lib.fluid_set_log_function(level, ctypes.cast(self._fn, ctypes.c_void_p), None)
        return self

    def __exit__(self, *exc: object) -> None:
        for level in _LOG_LEVELS[:3]:  # panic, error, warning: FluidSynth's own stderr output
            self.lib.fluid_set_log_function(level, self._default, None)
        for level in _LOG_LEVELS[3:]:  # info, debug: silent, as FluidSynth's default
            self.lib.fluid_set_log_function(level, None, None)


# One FluidSynth instance opens at a time (the log capture above is process-wide).
_open_lock = threading.Lock()


class SynthOutput:
    """FluidSynth as an output (see module docstring); thread-safe."""

    def __init__(self, soundfont: str | Path | None = None, drivers: list[str] | None = None, *,
                 gain: float = DEFAULT_GAIN, period_frames: int = PERIOD_FRAMES,
                 reverb: bool = True) -> None:
        self.name = BUILTIN_LABEL
        self.closed = False
        self.driver_name: str | None = None
        self._lock = threading.Lock()
        self._settings = self._synth = self._driver = None
        lib = _library()
        sf = Path(soundfont) if soundfont is not None else find_soundfont()
        if sf is None or not sf.is_file():
            raise SynthUnavailable("built-in piano: no SoundFont found "
                                   "(Debian: apt install fluid-soundfont-gm, or set COPILOT_SOUNDFONT)"
                                   if sf is None else f"built-in piano: SoundFont {sf} is not there")
        self.soundfont = sf
        drivers = list(drivers) if drivers is not None else audio_drivers()
        with _open_lock, _CollectLogs(lib) as logs:
            try:
                self._open(lib, sf, drivers, gain, period_frames, reverb, logs)
            except BaseException:
                self._free(lib)
                raise
        self._lib = lib

    def _open(self, lib: ctypes.CDLL, sf: Path, drivers: list[str], gain: float, period_frames: int,
              reverb: bool, logs: _CollectLogs) -> None:
        st = self._settings = lib.new_fluid_settings()
        if not st:
            raise SynthUnavailable("built-in piano: FluidSynth could not start")
        lib.fluid_settings_setnum(st, b"synth.gain", float(gain))
        # Only the presets in use are read from the SoundFont (the piano: ~0.1 s, not 150 MB).
        lib.fluid_settings_setint(st, b"synth.dynamic-sample-loading", 1)
        lib.fluid_settings_setint(st, b"synth.reverb.active", int(reverb))
        lib.fluid_settings_setint(st, b"synth.chorus.active", 0)
        lib.fluid_settings_setint(st, b"audio.period-size", int(period_frames))
        lib.fluid_settings_setint(st, b"audio.periods", PERIODS)
        lib.fluid_settings_setstr(st, b"audio.jack.id", JACK_CLIENT.encode())
        lib.fluid_settings_setint(st, b"audio.jack.autoconnect", 1)
        lib.fluid_settings_setint(st, b"midi.autoconnect", 0)
        syn = self._synth = lib.new_fluid_synth(st)
        if not syn:
            raise SynthUnavailable("built-in piano: FluidSynth could not start")
        sfid = lib.fluid_synth_sfload(syn, str(sf).encode(), 1)
        if sfid == _FLUID_FAILED:
            raise SynthUnavailable(f"built-in piano: cannot read SoundFont {sf}")
        for channel in range(16):  # an acoustic grand everywhere; GM drums on channel 10 (the click)
            if channel != 9:
                lib.fluid_synth_program_select(syn, channel, sfid, 0, 0)
        for driver in drivers:
            lib.fluid_settings_setstr(st, b"audio.driver", driver.encode())
            self._driver = lib.new_fluid_audio_driver(st, syn)
            if self._driver:
                self.driver_name = driver
                return
        errors = [line for line in logs.lines if "fail" in line.lower() or "error" in line.lower()]
        detail = f" ({errors[-1]})" if errors else ""
        raise SynthUnavailable(f"built-in piano: no audio device (tried {', '.join(drivers)}){detail}")

    # -- the output interface -------------------------------------------------------
    def send(self, msg: mido.Message) -> None:
        """Play one MIDI message (channel voice messages; others are ignored)."""
        with self._lock:
            if self.closed:
                return
            lib, syn, t = self._lib, self._synth, msg.type
            if t == "note_on":
                if msg.velocity > 0:
                    lib.fluid_synth_noteon(syn, msg.channel, msg.note, msg.velocity)
                else:
                    lib.fluid_synth_noteoff(syn, msg.channel, msg.note)
            elif t == "note_off":
                lib.fluid_synth_noteoff(syn, msg.channel, msg.note)
            elif t == "control_change":
                lib.fluid_synth_cc(syn, msg.channel, msg.control, msg.value)
            elif t == "pitchwheel":
                lib.fluid_synth_pitch_bend(syn, msg.channel, msg.pitch + 8192)
            elif t == "program_change":
                lib.fluid_synth_program_change(syn, msg.channel, msg.program)
            elif t == "aftertouch":
                lib.fluid_synth_channel_pressure(syn, msg.channel, msg.value)

    def all_notes_off(self) -> None:
        """Silence at once: every note and its release tail on every channel (panic)."""
        with self._lock:
            if self.closed:
                return
            for channel in range(16):
                self._lib.fluid_synth_cc(self._synth, channel, 64, 0)
                self._lib.fluid_synth_all_notes_off(self._synth, channel)
                self._lib.fluid_synth_all_sounds_off(self._synth, channel)

    panic = all_notes_off  # mido's ports call it that

    @property
    def voices(self) -> int:
        """Voices sounding now (0 after ``all_notes_off``)."""
        with self._lock:
            return 0 if self.closed else self._lib.fluid_synth_get_active_voice_count(self._synth)

    def close(self) -> None:
        """Stop the audio and free the synthesizer; later sends are dropped."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._free(self._lib)

    def _free(self, lib: ctypes.CDLL) -> None:
        driver, self._driver = self._driver, None
        synth, self._synth = self._synth, None
        settings, self._settings = self._settings, None
        if driver:
            lib.delete_fluid_audio_driver(driver)
        if synth:
            lib.delete_fluid_synth(synth)
        if settings:
            lib.delete_fluid_settings(settings)

    def __enter__(self) -> "SynthOutput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SynthOutput({self.soundfont.name}, driver={self.driver_name}, closed={self.closed})"


def open_synth(**kwargs: object) -> SynthOutput:
    """The built-in piano, or SynthUnavailable with one line saying why not."""
    try:
        return SynthOutput(**kwargs)  # type: ignore[arg-type]
    except SynthUnavailable:
        raise
    except Exception as exc:  # a ctypes or OS surprise is still one line
        raise SynthUnavailable(f"built-in piano: {exc}") from exc
