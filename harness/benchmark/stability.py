"""Whether a group's timing can be trusted: the harness's median beside the framework's own timer, and each
configuration's ratio to the fastest from sweep to sweep.

A group is re-timed once when, for one of its configurations, the harness and the framework's own timer (run in
the same process, in the same sweeps) disagree by more than `OWN_TIMER_TOLERANCE`, or its ratio to the fastest
moved by more than `SPREAD_LIMIT` times between its best and worst sweep. What is still disturbed after the
re-time is marked unstable, with the reason.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from harness.benchmark.measurements import Key, Measurements
from harness.benchmark.plan import BenchConfig

__all__ = ["OWN_TIMER_TOLERANCE", "SPREAD_LIMIT", "disturbances", "own_timer_median", "sweep_ratios"]

OWN_TIMER_TOLERANCE = 0.10  # |harness median / own timer's median − 1| above this: one of them was disturbed
SPREAD_LIMIT = 1.5  # ratio_high / ratio_low above this: the sweeps did not see the same machine


def sweep_ratios(configs: Sequence[BenchConfig], measured: Measurements,
                 sweeps: int) -> dict[BenchConfig, list[float]]:
    """Each configuration's ratio to the fastest, sweep by sweep, within its (device, dtype, n, direction)."""
    peers: dict[tuple[str, str, int, str], list[BenchConfig]] = defaultdict(list)
    for config in configs:
        if config not in measured.problems and len(measured.blocks.get(config, [])) == sweeps:
            peers[(config.device, config.dtype, config.n, config.direction)].append(config)
    per_sweep: dict[BenchConfig, list[float]] = defaultdict(list)
    for members in peers.values():
        for sweep in range(sweeps):
            medians = {c: float(statistics.median(measured.blocks[c][sweep].data)) for c in members}
            best = min(medians.values())
            for config, value in medians.items():
                per_sweep[config].append(value / best)
    return per_sweep


def own_timer_median(measured: Measurements, key: Key) -> tuple[str, float] | None:
    """The framework's own timer on `key`: its name and the median over the sweeps, or None."""
    checks = measured.own.get(key)
    if not checks:
        return None
    return checks[0].timer, float(statistics.median(check.median_s for check in checks))


def disturbances(configs: Sequence[BenchConfig], measured: Measurements, sweeps: int) -> dict[Key, str]:
    """The group's configurations that look disturbed, each with the reason."""
    found: dict[Key, str] = {}
    for config, ratios in sweep_ratios(configs, measured, sweeps).items():
        if min(ratios) > 0 and max(ratios) / min(ratios) > SPREAD_LIMIT:
            found[config] = (f"its ratio to the fastest ranged {min(ratios):.2f}–{max(ratios):.2f} over the sweeps "
                             f"(more than {SPREAD_LIMIT:g}×)")
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
