"""The one base class for bad input to the tool, here in the lowest package that raises it."""

from __future__ import annotations

__all__ = ["BadInput"]


class BadInput(ValueError):
    """Bad usage or bad input (a name, a flag, a case file, a run folder): the message is one line that names what
    was wrong and how to fix it. The CLI catches this class alone and exits with code 2."""
