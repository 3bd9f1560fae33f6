#!/usr/bin/env bash
# System libraries the app and its tests need on Debian/Ubuntu:
#  - offscreen/desktop Qt: EGL, GL, xkbcommon, fontconfig, D-Bus, a font;
#  - MIDI without a sound card: JACK (jackd2) with its dummy driver;
#  - a C++ compiler for the fused one-token step (model/fast_step.cpp).
# Installs only what is missing; elsewhere (macOS, Windows, no apt) it says so
# and lets the Python setup go on.
set -euo pipefail

PACKAGES=(libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3
          libxcb-cursor0 fonts-dejavu-core libasound2 jackd2 g++)

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
