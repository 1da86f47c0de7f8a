"""Whether a group's timing can be trusted: the harness's median beside the framework's own timer, and each
configuration's ratio to the fastest from sweep to sweep.

A configuration looks disturbed when the harness and the framework's own timer (run in the same process, in the
same sweeps) disagree by more than `OWN_TIMER_TOLERANCE`, or when its `ratio_high / ratio_low` (the middle half
of its per-sweep ratios to the fastest) exceeds `SPREAD_LIMIT`. The disturbed configurations of a group are then
timed once more, in a second pass of sweeps beside the fastest configuration of each direction (so that their
ratios are again taken side by side, within the pass); what is still disturbed after that is marked unstable.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from harness.benchmark.measurements import Key, Measurements
from harness.benchmark.messages import Timed
from harness.benchmark.plan import BenchConfig

__all__ = ["OWN_TIMER_TOLERANCE", "SPREAD_LIMIT", "disturbances", "own_timer_median", "ratio_range", "retimed_with",
           "sweep_ratios"]

OWN_TIMER_TOLERANCE = 0.10  # |harness median / own timer's median − 1| above this: one of them was disturbed
SPREAD_LIMIT = 1.5  # ratio_high / ratio_low above this: the sweeps did not see the same machine


def ratio_range(ratios: Sequence[float]) -> tuple[float, float]:
    """(ratio_low, ratio_high): the quartiles of the per-sweep ratios, the middle half of the sweeps. The whole
    range would be set by one sweep's hiccup and widen with the number of sweeps; the quartiles say whether the
    sweeps agree."""
    low, high = np.percentile(ratios, [25, 75])
    return float(low), float(high)


def _ratios_in(members: Sequence[BenchConfig], blocks: dict[BenchConfig, list[Timed]],
               sweeps: int) -> dict[BenchConfig, list[float]]:
    """Each member's ratio to the fastest member, sweep by sweep, over the given blocks."""
    peers: dict[tuple[str, str, int, str], list[BenchConfig]] = defaultdict(list)
    for config in members:
        peers[(config.device, config.dtype, config.n, config.direction)].append(config)
    per_sweep: dict[BenchConfig, list[float]] = defaultdict(list)
    for group in peers.values():
        for sweep in range(sweeps):
            medians = {c: float(statistics.median(blocks[c][sweep].data)) for c in group}
            best = min(medians.values())
            for config, value in medians.items():
                per_sweep[config].append(value / best)
    return per_sweep


def sweep_ratios(configs: Sequence[BenchConfig], measured: Measurements,
                 sweeps: int) -> dict[BenchConfig, list[float]]:
    """Each configuration's ratio to the fastest, sweep by sweep, within its (device, dtype, n, direction) and
    within one pass: a configuration timed again is compared with what was timed again beside it, the others
    with the first pass of everything."""
    timed = [c for c in configs if c not in measured.problems and len(measured.blocks.get(c, [])) == sweeps]
    again = [c for c in timed if c in measured.earlier]
    first = {c: measured.earlier.get(c, measured.blocks[c]) for c in timed}
    ratios = {c: r for c, r in _ratios_in(timed, first, sweeps).items() if c not in measured.earlier}
    return ratios | _ratios_in(again, {c: measured.blocks[c] for c in again}, sweeps)


def own_timer_median(measured: Measurements, key: Key) -> tuple[str, float] | None:
    """The framework's own timer on `key`: its name and the median over the sweeps, or None."""
    checks = measured.own.get(key)
    if not checks:
        return None
    return checks[0].timer, float(statistics.median(check.median_s for check in checks))


def disturbances(configs: Sequence[BenchConfig], measured: Measurements, sweeps: int) -> dict[BenchConfig, str]:
    """The group's configurations that look disturbed, each with the reason."""
    found: dict[BenchConfig, str] = {}
    for config, ratios in sweep_ratios(configs, measured, sweeps).items():
        low, high = ratio_range(ratios)
        if low > 0 and high / low > SPREAD_LIMIT:
            found[config] = (f"its ratio to the fastest ranged {low:.2f}–{high:.2f} over the middle half of the "
                             f"sweeps (more than {SPREAD_LIMIT:g}×)")
    for config in configs:
        own = own_timer_median(measured, config)
        data = measured.data(config)
        if own is None or not data or config in measured.problems:
            continue
        timer, own_s = own
        harness_s = float(statistics.median(data))
        if abs(harness_s / own_s - 1) > OWN_TIMER_TOLERANCE:
            reason = (f"harness median {harness_s * 1e6:.4g} µs vs {timer} {own_s * 1e6:.4g} µs "
                      f"({harness_s / own_s:.2f}×, beyond ±{OWN_TIMER_TOLERANCE:.0%})")
            found[config] = f"{found[config]}; {reason}" if config in found else reason
    return found


def retimed_with(disturbed: Sequence[BenchConfig], configs: Sequence[BenchConfig],
                 measured: Measurements) -> list[BenchConfig]:
    """What a second pass times: the disturbed configurations and, beside them, the fastest configuration of each
    of their directions (by median), so that their ratios to the fastest are taken within the pass."""
    chosen = dict.fromkeys(disturbed)
    for direction in dict.fromkeys(c.direction for c in disturbed):
        peers = sorted((c for c in configs if c.direction == direction and measured.data(c)
                        and c not in measured.problems), key=lambda c: statistics.median(measured.data(c)))
        # the fastest, and when it is itself disturbed the fastest undisturbed one too: a pass of one
        # configuration would have nothing to be compared with
        chosen.update(dict.fromkeys(peers[:1] + [c for c in peers if c not in disturbed][:1]))
    return [c for c in configs if c in chosen]
