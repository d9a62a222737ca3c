"""Progress samples of the coordinator's loop (tansiv/run/progress.py): bounded in number,
and the speed of a run's middle taken from them."""

import pytest

from tansiv.run import progress


def test_samples_stay_bounded_and_in_order():
    p = progress.Progress(0, period_s=0)
    for k in range(5000):
        p.note(k, k * 1000)
    assert len(p.samples) <= progress.Progress.MAX
    sims = [s for s, _ in p.samples]
    walls = [t for _, t in p.samples]
    assert sims == sorted(sims) and walls == sorted(walls) and sims[0] == 0


def test_the_middle_leaves_the_start_and_the_end_out():
    # 4 wall s of start-up reach 1 s of simulated time, then 10 simulated s per wall s to
    # 81 s, then 3 wall s of power-off at 81 s.
    samples = ([[0, 0.0], [int(1e9), 4.0]] + [[int((1 + 10 * k) * 1e9), 4.0 + k]
                                              for k in range(1, 9)] + [[int(81e9), 15.0]])
    assert progress.mid_speed(samples, 0, int(81e9)) == pytest.approx(10.0)
    # Fewer than two samples in the middle: no figure, rather than a wrong one.
    assert progress.mid_speed(samples[:2] + samples[-1:], 0, int(81e9)) is None
    assert progress.mid_speed(None, 0, int(81e9)) is None
