"""`bisect`: which release of a framework changed a finding. One cached environment per release (`envs`), the
finding's minimal case audited in each release visited (`probe`), releases halved until the change lies between
two neighbours (`search`), the answer (`answer`)."""

from harness.bisect.answer import bisect_target, describe, plan_install, write_json
from harness.bisect.envs import EnvCache, Failed, Release
from harness.bisect.probe import BisectError, Target, audit_release, target_of_cases, target_of_finding
from harness.bisect.releases import ReleaseError, index_versions, release_notes, select_releases
from harness.bisect.search import WORKING_STATUSES, Bisection, Outcome, bisect_releases

__all__ = ["WORKING_STATUSES", "BisectError", "Bisection", "EnvCache", "Failed", "Outcome", "Release", "ReleaseError",
           "Target", "audit_release", "bisect_releases", "bisect_target", "describe", "index_versions",
           "plan_install", "release_notes", "select_releases", "target_of_cases", "target_of_finding", "write_json"]
