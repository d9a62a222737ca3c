"""How fast a run went, stretch by stretch: (simulated ns, wall s) samples of the coordinator's
loop, so that a speed can be taken over part of a run (its middle: start-up and end left out,
experiments/runner.py) and not only over the whole of it."""

class Progress:
    """Samples at least `period_s` of wall time apart, at most MAX of them: past that, every
    other one goes and the period doubles, so that a run of any length keeps its shape."""
    MAX = 512

    def __init__(self, t0_ns: int, period_s: float = 0.01):
        self.samples = []   # [simulated ns, wall s since t0]
        self._t0, self._period, self._last = t0_ns, period_s, None

    def note(self, sim_ns: int, now_ns: int) -> None:
        """The loop reached sim_ns at perf_counter_ns() now_ns (the caller's: it has one)."""
        t = (now_ns - self._t0) / 1e9
        if self._last is not None and t - self._last < self._period:
            return
        self._last = t
        self.samples.append([sim_ns, round(t, 6)])
        if len(self.samples) > self.MAX:
            self.samples = self.samples[::2]
            self._period *= 2


def mid_speed(samples, start_ns: int, end_ns: int, lo: float = 0.25, hi: float = 0.75):
    """Simulated s per wall s between the first sample at or past `lo` of [start_ns, end_ns]
    and the last one at or before `hi`: the middle of a run, its start-up (VMs restored,
    their code translated again) and its end (guests powering off) left out. None without
    two such samples."""
    a, b = start_ns + lo * (end_ns - start_ns), start_ns + hi * (end_ns - start_ns)
    inside = [s for s in samples or () if a <= s[0] <= b]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0] or inside[-1][1] <= inside[0][1]:
        return None
    (s0, t0), (s1, t1) = inside[0], inside[-1]
    return (s1 - s0) / 1e9 / (t1 - t0)
