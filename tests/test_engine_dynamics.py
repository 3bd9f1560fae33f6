"""Answer dynamics (copilot_app/engine/dynamics.py): pure functions, no model."""
from __future__ import annotations

from copilot_app.engine.dynamics import DEFAULT_VELOCITY, SLOT_TICKS, flat_velocity, phrase_dynamics
from model.tokens.config import TICKS_PER_QUARTER

Q = TICKS_PER_QUARTER
BAR = 4 * Q


def bars_of(pattern, bars, scale=1.0):
    """The same per-quarter velocity pattern in each bar: (tick, velocity) pairs."""
    return [(b * BAR + i * Q, round(v * scale)) for b in range(bars) for i, v in enumerate(pattern)]


def test_nothing_played_gives_the_default_and_fixed_wins():
    assert phrase_dynamics([], BAR).velocity(0) == DEFAULT_VELOCITY
    dyn = phrase_dynamics(bars_of([100, 60, 80, 60], 2), BAR, fixed=45)
    assert dyn.velocities(range(0, 2 * BAR, Q // 2), 0) == [45] * 16


def test_accents_by_position_in_the_bar_are_followed():
    dyn = phrase_dynamics(bars_of([110, 60, 85, 60], 4), BAR)
    answer = [dyn.velocity(4 * BAR + i * Q, 4 * BAR) for i in range(4)]
    assert answer[0] > answer[2] > answer[1]           # strong beat 1, medium 3, weak 2 and 4
    assert answer[1] == answer[3]
    # an off-beat eighth nobody played sits at the level
    assert min(answer) <= dyn.velocity(4 * BAR + SLOT_TICKS, 4 * BAR) <= max(answer)


def test_level_and_range_follow_a_soft_or_loud_phrase():
    soft = phrase_dynamics(bars_of([60, 40, 50, 40], 4), BAR)
    loud = phrase_dynamics(bars_of([120, 90, 105, 90], 4), BAR)
    ticks = range(4 * BAR, 6 * BAR, Q // 2)
    vs, vl = soft.velocities(ticks, 4 * BAR), loud.velocities(ticks, 4 * BAR)
    assert max(vs) <= 60 and min(vs) >= 40 and min(vl) >= 90 and max(vl) <= 120
    assert sum(vl) / len(vl) - sum(vs) / len(vs) > 40


def test_the_contour_of_the_last_bars_is_echoed():
    # a crescendo over the last two bars: soft bar, loud bar
    phrase = bars_of([50] * 4, 2) + [(2 * BAR + i * Q, 50) for i in range(4)] + \
        [(3 * BAR + i * Q, 100) for i in range(4)]
    dyn = phrase_dynamics(phrase, BAR)
    first, second = dyn.velocity(4 * BAR, 4 * BAR), dyn.velocity(5 * BAR, 4 * BAR)
    assert first < second
    # the level is where the player is now (last two bars), not the whole phrase
    assert 70 <= dyn.level <= 80


def test_the_old_flat_velocity_for_comparison():
    assert flat_velocity([(0, 70), (1, 90), (2, 110)]) == 90
