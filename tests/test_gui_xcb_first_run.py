"""First run on a real X display: `make run` (= `python main.py`) with Qt's xcb platform plugin.

Every other GUI test renders offscreen, which never loads the xcb plugin, so a
desktop missing one of its libraries (libxcb-icccm4, libxcb-keysyms1, ...)
would abort before the window opens and no test would notice. Here the app
runs in a subprocess on a virtual X server (Xvfb) with QT_QPA_PLATFORM=xcb;
the test checks that the X server maps its window (xwininfo) and that a
picture of the X screen (taken by a second xcb client, not by the app) shows
something drawn inside that window.

.ci/sysdeps.sh installs xvfb and x11-utils; under CI=true a missing one is a
failure, not a skip.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO_ROOT

TITLE = "Composer Copilot"

# A second X client that photographs the whole X screen and reports how many
# colours the given rectangle holds (the app's window as the X server has it).
GRAB = r"""
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
x, y, w, h, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
image = app.primaryScreen().grabWindow(0).toImage()
image.save(out)
colours = {image.pixel(i, j) for i in range(max(x, 0), min(x + w, image.width()), 5)
           for j in range(max(y, 0), min(y + h, image.height()), 5)}
print(len(colours))
"""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (bash .ci/sysdeps.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_display() -> int:
    for number in range(91, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb():
    xvfb_bin = _need("Xvfb")
    number = _free_display()
    proc = subprocess.Popen([xvfb_bin, f":{number}", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    display = f":{number}"
    deadline = time.monotonic() + 15
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Xvfb did not start: {proc.stderr.read().decode(errors='replace')[-400:]}")
        time.sleep(0.1)
    yield display
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


def _window_info(display: str) -> dict[str, str] | None:
    """xwininfo's answer for the app's top-level window, or None while there is none."""
    env = dict(os.environ, DISPLAY=display)
    result = subprocess.run(["xwininfo", "-name", TITLE], env=env, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        return None
    info = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s*([^:]+):\s*(.*)$", line)
        if match:
            info[match.group(1).strip()] = match.group(2).strip()
    return info


@pytest.mark.slow
def test_make_run_opens_the_real_window_on_xcb(xvfb, tmp_path):
    _need("xwininfo")
    env = dict(os.environ, DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", QT_DEBUG_PLUGINS="1",
               COPILOT_SETTINGS=str(tmp_path / "settings.ini"), XDG_RUNTIME_DIR=str(tmp_path),
               HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("WAYLAND_DISPLAY", None)
    log = tmp_path / "app.log"
    with open(log, "wb") as fh:
        # What `make run` runs, in the venv this test runs in.
        app = subprocess.Popen([sys.executable, str(REPO_ROOT / "main.py")], cwd=REPO_ROOT, env=env,
                               stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if app.poll() is not None:
                break
            info = _window_info(xvfb)
            if info and info.get("Map State") == "IsViewable":
                break
            time.sleep(0.3)
        output = log.read_text(errors="replace")
        assert app.poll() is None, f"the app exited ({app.returncode}) before its window mapped:\n{output[-3000:]}"
        assert info is not None and info.get("Map State") == "IsViewable", \
            f"no viewable '{TITLE}' window on the X server: {info}\n{output[-3000:]}"
        assert "Could not load the Qt platform plugin" not in output
        assert re.search(r"libqxcb\.so", output), "QT_DEBUG_PLUGINS shows no xcb plugin loaded"
        width, height = int(info["Width"]), int(info["Height"])
        assert width >= 600 and height >= 400, info
        x, y = int(info["Absolute upper-left X"]), int(info["Absolute upper-left Y"])
        time.sleep(1.5)  # let it paint
        shot = tmp_path / "xcb-screen.png"
        grab = subprocess.run([sys.executable, "-c", GRAB, str(x), str(y), str(width), str(height), str(shot)],
                              env=env, capture_output=True, text=True, timeout=60)
        assert grab.returncode == 0, grab.stderr[-2000:]
        colours = int(grab.stdout.strip().splitlines()[-1])
        # A blank (unpainted) window is one flat colour; the real one has text, sliders, a piano.
        assert colours > 8, f"the window looks blank on the X screen ({colours} colours), see {shot}"
        assert app.poll() is None, "the app died while its window was up"
    finally:
        if app.poll() is None:
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
