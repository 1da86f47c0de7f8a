"""The bisection over fake releases (no downloads): it finds the release where the result changes, within
⌈log2 n⌉ + 2 audits plus one per skipped release, and a release that cannot be installed or audited is skipped and
listed, never taken as the change."""

from __future__ import annotations

import math

import pytest

from harness.bisect import Bisection, Outcome, select_releases
from harness.bisect.releases import ReleaseError, release_notes
from harness.bisect.search import bisect_releases
from implementations.jax_adapter import JaxAdapter
from implementations.sklearn_adapter import SklearnAdapter

RELEASES = [f"0.{minor}.0" for minor in range(3, 12)]  # nine releases, 0.3.0 … 0.11.0


def _probe(changed_at: str, broken: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    """A release before `changed_at` gives 0 ULP (pass), from it on 3e6 ULP (fail); `broken` ones skip."""
    seen: list[str] = []

    def probe(version: str) -> Outcome:
        seen.append(version)
        if version in broken:
            return Outcome(version, skipped="pip could not install it")
        old = RELEASES.index(version) < RELEASES.index(changed_at)
        return Outcome(version, "pass" if old else "fail", 0.5 if old else 0.0, 0.5, 0.0 if old else 3e6)

    return probe, seen


@pytest.mark.parametrize("changed_at", RELEASES[1:])
def test_the_first_changed_release_is_found_within_the_budget(changed_at: str) -> None:
    probe, seen = _probe(changed_at)
    found = bisect_releases(RELEASES, probe)
    assert found.first_changed is not None and found.last_same is not None
    assert found.first_changed.version == changed_at
    assert found.last_same.version == RELEASES[RELEASES.index(changed_at) - 1]
    assert (found.first_changed.status, found.last_same.status) == ("fail", "pass")
    assert len(seen) == len(set(seen)) == found.audits <= math.ceil(math.log2(9)) + 2 == found.budget()


def test_a_release_that_fails_to_install_is_skipped_listed_and_never_the_change() -> None:
    broken = frozenset({"0.7.0", "0.8.0"})  # the middle, and the first changed release itself
    probe, seen = _probe("0.8.0", broken)
    found = bisect_releases(RELEASES, probe)
    assert len(seen) == len(set(seen)) == found.audits  # no release audited twice, skipped ones included
    assert [o.version for o in found.skipped] == ["0.7.0", "0.8.0"]
    assert found.last_same is not None and found.first_changed is not None
    assert (found.last_same.version, found.first_changed.version) == ("0.6.0", "0.9.0")
    assert found.between == ["0.7.0", "0.8.0"]  # the change is in one of them: said, not guessed
    assert found.audits <= math.ceil(math.log2(9)) + 2 + 2 == found.budget()


def test_skipped_ends_move_inwards_and_equal_ends_mean_no_change() -> None:
    probe, _ = _probe("0.5.0", frozenset({"0.3.0", "0.11.0"}))
    found = bisect_releases(RELEASES, probe)
    assert found.first_changed is not None and found.first_changed.version == "0.5.0"
    assert [o.version for o in found.audited[:4]] == ["0.3.0", "0.4.0", "0.11.0", "0.10.0"]
    probe, _ = _probe("0.11.0", frozenset({"0.11.0"}))  # the only change would be in the broken newest
    found = bisect_releases(RELEASES, probe)
    assert found.first_changed is None and found.last_same is not None and found.last_same.version == "0.10.0"
    probe, _ = _probe("0.5.0", frozenset(RELEASES))
    nothing = bisect_releases(RELEASES, probe)
    assert (nothing.last_same, nothing.first_changed, nothing.audits) == (None, None, 9)


def test_the_answer_as_a_dictionary_keeps_every_audit() -> None:
    probe, _ = _probe("0.9.0")
    document = bisect_releases(RELEASES, probe).as_dict()
    assert document["first_changed"]["version"] == "0.9.0" and document["last_same"]["version"] == "0.8.0"
    assert document["audits"] == len(document["audited"]) and document["skipped"] == []
    assert Bisection(["1", "2"]).budget() == 3


def test_a_range_selects_the_final_releases_between_both_ends() -> None:
    available = ["0.4.30", "0.5.0", "0.5.1rc1", "0.5.3", "0.6.0", "0.10.2", "0.9.2"]
    assert select_releases("0.5.0..0.9.2", sorted(available)) == ["0.5.0", "0.5.3", "0.6.0", "0.9.2"]
    assert select_releases("0.6.0, 0.4.30,0.10.2", []) == ["0.4.30", "0.6.0", "0.10.2"]
    for bad, words in (("0.9.2..0.5.0", "older than"), ("0.5.0..0.7.7", "not a release"), ("x..0.6.0", "not a "
                       "version"), ("0.5.0", "two releases")):
        with pytest.raises(ReleaseError, match=words):
            select_releases(bad, available)


def test_release_notes_link_each_framework_release() -> None:
    jax, sklearn = JaxAdapter.release_pages, SklearnAdapter.release_pages
    assert release_notes(jax, "jax", "0.5.3") == "https://github.com/jax-ml/jax/releases/tag/jax-v0.5.3"
    assert release_notes(jax, "optax", "0.2.4") == "https://github.com/google-deepmind/optax/releases/tag/v0.2.4"
    assert release_notes(sklearn, "scikit-learn", "1.9.1") == "https://scikit-learn.org/stable/whats_new/v1.9.html"
    assert release_notes(jax, "somethingelse", "1.0") == ""


def test_the_answer_warns_when_a_companion_moved_between_the_two_releases() -> None:
    """jax 0.4.38 resolves optax 0.2.5 (optax 0.2.8 needs jax ≥ 0.5.3): the change may be optax's. jaxlib moves
    in lockstep with jax and is not a warning."""
    import numpy as np

    from cases import Case
    from harness.bisect import Target, describe

    found = Bisection(["0.4.38", "0.5.3"])
    found.last_same = Outcome("0.4.38", "nonfinite", float("nan"), -4.2e-18, float("inf"),
                              versions={"jax": "0.4.38", "jaxlib": "0.4.38", "optax": "0.2.5"})
    found.first_changed = Outcome("0.5.3", "pass", -4.2e-18, -4.2e-18, 0.3,
                                  versions={"jax": "0.5.3", "jaxlib": "0.5.3", "optax": "0.2.8"})
    found.audited = [found.last_same, found.first_changed]
    target = Target(Case("c", "user", "logits", np.array([40.0]), np.array([1.0])), "jax.focal", "float32")
    text = describe(found, target, "jax")
    assert "changed between jax 0.4.38 and 0.5.3" in text
    assert "their companions differ too (optax 0.2.5 → 0.2.8)" in text and "jaxlib 0.4.38 →" not in text
