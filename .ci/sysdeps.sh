#!/usr/bin/env bash
# System libraries the app and its tests need on Debian/Ubuntu:
#  - offscreen/desktop Qt: EGL, GL, xkbcommon, fontconfig, D-Bus, a font, and
#    the X11/xcb libraries of the xcb platform plugin (plus Xvfb to test it);
#  - MIDI without a sound card: JACK (jackd2) with its dummy driver;
#  - a C++ compiler for the fused one-token step (model/fast_step.cpp).
# Installs only what is missing; elsewhere (macOS, Windows, no apt) it says so
# and lets the Python setup go on.
set -euo pipefail

PACKAGES=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3
          fonts-dejavu-core libasound2 jackd2 g++
          # Qt's xcb platform plugin (the real window of `make run`): every
          # library `ldd` lists for PySide6's libqxcb.so and libQt6XcbQpa.so.6
          libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0
          libxcb-keysyms1 libxcb-randr0 libxcb-render0 libxcb-render-util0
          libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0
          libxcb-xkb1
          # the test that opens that window on a virtual X server
          xvfb x11-utils
          # the built-in piano: FluidSynth and a General MIDI SoundFont (FluidR3, MIT)
          libfluidsynth3 fluid-soundfont-gm)

if ! command -v apt-get >/dev/null 2>&1; then
    echo "sysdeps: no apt-get here; install Qt's GL/EGL libraries and JACK yourself if missing" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "sysdeps: missing ${missing[*]} and not root: install them to run everything" >&2
        exit 0
    fi
fi

echo "sysdeps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# jackd2 asks whether to enable realtime scheduling; the dummy driver needs none.
echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
