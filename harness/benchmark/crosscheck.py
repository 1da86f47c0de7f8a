"""Cross-check the harness's timing against a framework's own benchmark timer, in one process.

    python -m harness.benchmark.crosscheck [--framework torch] [--sizes 1e5,1e7] [--threads N] [--sweeps 5]

For the framework's own logits API, forward, eager, float32 on the CPU, it times the same call in turns:
through the harness's worker session (pytest-benchmark's calibration and rounds, the adapter's sync) and with
the framework's own timer (PyTorch: `torch.utils.benchmark.Timer.blocked_autorange`, same threads), and prints
both medians and their ratio. They should agree within a few percent; a larger gap means one of them measures
something the other does not.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence

from harness.benchmark.plan import bench_configs
from harness.benchmark.timing import BlockOptions
from harness.benchmark.worker import BenchSession
from harness.workers.process import adapter_instance
from implementations import Adapter, Unsupported

__all__ = ["crosscheck", "main"]


def crosscheck(framework: str | Adapter, sizes: Sequence[int], threads: int, sweeps: int = 5,
               min_run_time: float = 0.2) -> list[dict[str, float]]:
    """Per size: the harness's median and the framework timer's median (seconds per call), measured in turns.

    `framework`: a name (its adapter is loaded here with `threads`) or an adapter already loaded."""
    adapter = adapter_instance(framework) if isinstance(framework, str) else framework
    if isinstance(framework, str):
        adapter.load(threads)
    # the configuration `bench` times by default: the framework's own logits API, eager, forward, float32
    default, *_ = bench_configs({adapter.framework: type(adapter)}, None, ["eager"], ["forward"], ["cpu"],
                                ["float32"], [1])
    session = BenchSession(adapter, seed=0, options=BlockOptions(), threads=threads)
    results = []
    for n in sizes:
        config = default._replace(n=n)
        session.prepare(config)
        harness_times: list[float] = []
        native_medians: list[float] = []
        for _ in range(sweeps):  # the same call as `bench` cross-checks in its sweeps (BenchSession.own_timer)
            harness_times.extend(session.block(config).data)
            native_medians.append(session.own_timer(config, min_run_time).median_s)
        harness_median, native_median = statistics.median(harness_times), statistics.median(native_medians)
        results.append({"n": n, "harness_median_s": harness_median, "native_median_s": native_median,
                        "ratio": harness_median / native_median})
        session.release()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.benchmark.crosscheck", description=__doc__.splitlines()[0])
    parser.add_argument("--framework", default="torch", help="a framework with its own timer (default torch)")
    parser.add_argument("--sizes", default="1e5,1e7", help="comma-separated sizes (default 1e5,1e7)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--sweeps", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [int(float(size)) for size in args.sizes.split(",")]
    try:
        results = crosscheck(args.framework, sizes, args.threads, args.sweeps)
    except (KeyError, Unsupported) as exc:
        parser.exit(2, f"python -m harness.benchmark.crosscheck: error: {exc}; try --framework torch\n")
    for result in results:
        print(f"{args.framework} n={result['n']:>11,}  harness {result['harness_median_s'] * 1e6:10.1f} µs   "
              f"own timer {result['native_median_s'] * 1e6:10.1f} µs   ratio {result['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
