"""`listen --velocity V`: every answer note at V; without it the answer follows the player."""
from __future__ import annotations

import pytest

from copilot_app import cli
from copilot_app.engine import headless
from copilot_app.engine.session import SessionSettings


class Built(Exception):
    pass


def settings_of(monkeypatch, argv: list[str]) -> SessionSettings:
    made: list[SessionSettings] = []

    def capture(**kwargs):
        made.append(SessionSettings(**kwargs))
        raise Built

    monkeypatch.setattr(headless, "load_model", lambda *a, **k: (None, {}, None))
    monkeypatch.setattr(headless, "SessionSettings", capture)
    with pytest.raises(Built):
        headless.run_listen(cli.build_parser().parse_args(argv))
    return made[0]


def test_listen_velocity_flag_reaches_the_session_settings(monkeypatch):
    assert settings_of(monkeypatch, ["listen", "--virtual", "--velocity", "64"]).fixed_velocity == 64
    assert settings_of(monkeypatch, ["listen", "--virtual"]).fixed_velocity is None


@pytest.mark.parametrize("bad", ["0", "128", "loud"])
def test_listen_velocity_out_of_range_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["listen", "--virtual", "--velocity", bad])
    assert exit_info.value.code == 2
    assert "--velocity" in capsys.readouterr().err
