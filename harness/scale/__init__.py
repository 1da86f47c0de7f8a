"""Past one run: merging the run folders of shards, machines and framework versions into one."""

from harness.scale.merge import merge_runs

__all__ = ["merge_runs"]
