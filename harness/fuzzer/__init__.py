"""`fuzz`: a search for the inputs where an implementation is worst, each failure shrunk to its minimal input,
and the value where its behaviour starts.

Hypothesis draws batches of bit patterns (`draw`), the audit's workers compute them and the audit's judge and
findings signatures score them (`probe`), `target()` steers the search towards larger errors (`search`), and each
distinct failure is shrunk to one element and the simplest configuration, with its onset (`shrink`). `run` puts
them together; the API writes the minimal cases as a case file and audits them into a run folder.
"""

from harness.fuzzer.probe import Config, FuzzLoadError, Prober, Problem
from harness.fuzzer.run import FuzzOutcome, minimal_case, run_fuzz
from harness.fuzzer.search import Search, searches
from harness.fuzzer.shrink import Minimal, Onset

__all__ = [
           "Config",
           "FuzzLoadError",
           "FuzzOutcome",
           "Minimal",
           "Onset",
           "Prober",
           "Problem",
           "Search",
           "minimal_case",
           "run_fuzz",
           "searches",
]
