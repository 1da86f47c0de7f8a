"""The benchmark pipeline: the plan of configurations, the requests and replies of its workers, the worker itself,
the timing primitives over pytest-benchmark, the interleaved sweeps, the measurements so far, and the rows they
become; `crosscheck` compares its timing with a framework's own timer."""

from harness.benchmark.plan import BenchConfig, ReadConfig, bench_configs, shard_bench
from harness.benchmark.rows import as_frame, conformance_status
from harness.benchmark.sweeps import DEFAULT_PROCESSES, BenchResult, run_bench, run_into
from harness.benchmark.timing import BlockOptions

__all__ = ["DEFAULT_PROCESSES", "BenchConfig", "BenchResult", "BlockOptions", "ReadConfig", "as_frame",
           "bench_configs", "conformance_status", "run_bench", "run_into", "shard_bench"]
