"""A finding in words: its title (one line, with the numbers of its minimal example) and its likely cause."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["exact", "number", "title_of", "why_of"]


def number(value: Any, digits: int = 6) -> str:
    """A value for people: `digits` significant digits, `inf`, `NaN`."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _pair(got: Any, expected: Any) -> tuple[str, str]:
    """Two values with as many digits as it takes to tell them apart (up to float64's 17)."""
    for digits in (6, 9, 12, 17):
        shown = number(got, digits), number(expected, digits)
        if shown[0] != shown[1]:
            return shown
    return shown


def _where(record: dict[str, Any], example: dict[str, Any]) -> str:
    """"at x = 40, y = 1 (x ≫ 0, y = 1, float64)" for an element; the case for a whole case."""
    if "x" not in example:
        return f"on case {example['case']} ({example['dtype']}, {example['reduction']})"
    name = "p" if example["form"] == "probs" else "x"
    return (f"at {name} = {exact(example['x'])}, y = {exact(example['y'])} ({example['region']}, "
            f"{example['dtype']})")


def exact(value: Any) -> str:
    """An input as typed to reproduce it: the shortest text that reads back as the same float."""
    return number(value) if not math.isfinite(float(value)) else repr(float(value))


_QUANTITY_WORDS = {"loss": "loss", "gradient": "gradient", "grad_fwd": "forward-mode derivative",
                   "grad_y": "derivative with respect to y", "grad_weight": "derivative with respect to the weight",
                   "grad_pos_weight": "derivative with respect to pos_weight", "grad2": "second derivative",
                   "call": "result"}


def _quantity(record: dict[str, Any], example: dict[str, Any]) -> str:
    reduced = "" if example["reduction"] == "none" else f"{example['reduction']} "
    return reduced + _QUANTITY_WORDS.get(record["family"], record["family"])


def _value(record: dict[str, Any], example: dict[str, Any]) -> str:
    """"gradient is 0 where the exact value is -4.24835e-18" (and the error in ULPs when it is finite)."""
    ulp = example.get("ulp", math.nan)
    error = f" ({number(ulp)} ULP)" if isinstance(ulp, float) and math.isfinite(ulp) and ulp > 0 else ""
    got, expected = _pair(example["got"], example["expected"])
    return f"{_quantity(record, example)} is {got} where the exact value is {expected}{error}"


def title_of(record: dict[str, Any], example: dict[str, Any]) -> str:
    kind, region = record["kind"], record["region"]
    message = str(example.get("message", "")).split(";")[0].strip()[:100]
    if kind in ("precision", "nonfinite"):
        return f"{_value(record, example)} {_where(record, example)}"
    if kind == "convention":
        return f"{region}: {_value(record, example)} {_where(record, example)}"
    if kind == "reduction" and record["failure"] == "wrong shape":
        return f"{_quantity(record, example)} has the wrong shape over {example['n']} elements: {message}"
    if kind == "reduction":
        return f"{_value(record, example)} over {example['n']} {example['dtype']} elements ({region})"
    if kind == "dtype" and region == "narrower computation":
        return (f"computes in {example['compute_dtype']} what its {example['dtype']} inputs ask for: "
                f"{_value(record, example)} {_where(record, example)}")
    if kind == "dtype":
        return (f"returns {example['out_dtype']} where the inputs imply {example['implied']} ({region}, "
                f"{example['dtype']} inputs)")
    if kind == "broadcast":
        return f"returns a result instead of raising where {region} ({message})"
    if kind == "raises":
        return f"raises {example.get('error_type') or 'an error'} on {region}: {message}"
    if kind in ("crash", "timeout"):
        return f"the worker {'died' if kind == 'crash' else 'stopped answering'} on {region}: {message}"
    if kind == "relation":
        got, mapped = _pair(example["got"], example["expected"])
        return (f"{example['relation']} does not hold: {_quantity(record, example)} is {got} where the identity "
                f"gives {mapped} {_where(record, example)}")
    if kind == "path" and region == "raises on one path only":
        return f"{example['mode']} and eager disagree on raising: {message}"
    if kind == "path" and region == "result dtype differs from eager":
        detail = str(example.get("message", "")).split("; ")[-1]
        return f"{example['mode']} returns another dtype than eager ({example['dtype']} inputs): {detail}"
    if kind == "batch":
        return (f"{_quantity(record, example)} differs inside a batch from the element alone "
                f"{_where(record, example)}")
    got, eager = _pair(example["got"], example["expected"])
    return (f"{example['mode']} {_quantity(record, example)} is {got} where eager gives {eager} "
            f"{_where(record, example)}")


def _why_value(record: dict[str, Any]) -> str:
    region, failure = record["region"], record["failure"]
    if "inf," in region:
        return "∞ − ∞ or 0·∞ inside the formula at an infinite input (e.g. (1 − y)·x at x = ∞)"
    if record["kind"] == "nonfinite" and ("p = 0" in region or "p = 1" in region):
        return "log 0 = −∞ where the formula does not treat 0·log 0 as 0, or divides by p or 1 − p"
    if failure == "lost" and ("≫" in region or "≪" in region):
        return ("cancellation: once σ(x) rounds to 1 in the dtype, 1 − σ(x), or log(1 + e^x) without log1p, "
                "loses a result that σ(−x) and log1p keep")
    if failure == "lost" and "≈" in region:
        return "1 − p, or log(1 − p) without log1p, rounds away what p's last digits carry"
    if failure == "imprecise":
        return "rounding in the formula or its derivative beyond what the inputs' own rounding explains"
    return ""


def why_of(record: dict[str, Any], convention_reason: str = "") -> str:
    """The likely cause, from the kind and region (a documented convention: its reason)."""
    kind, region = record["kind"], record["region"]
    if kind == "convention":
        return convention_reason
    if kind in ("precision", "nonfinite"):
        return _why_value(record)
    return {
        "reduction": ("a count or a sum held in float16 (its largest number is 65 504; every integer from 65 520 "
                      "rounds to inf)" if region.startswith("n ≥") else "the reduction itself, not its elements"),
        "dtype": {"narrower result": "computes in a narrower dtype than its inputs' (a loss class's own dtype)",
                  "narrower computation": "computes in a narrower dtype than its inputs' (a loss class's own dtype, "
                                          "floatx): what it returns has that dtype's precision",
                  "label dtype not promoted": "a wider label is cast to the input's dtype instead of promoting it",
                  }.get(region, "returns a wider dtype than its inputs'"),
        "broadcast": "mismatched shapes are broadcast against each other instead of raising",
        "raises": f"the API does not accept {region}",
        "batch": "the vectorised main loop and its scalar tail compute differently",
        "path": "the compiled graph computes differently from eager (fusion or rewriting)"
                if region not in ("raises on one path only", "result dtype differs from eager") else
                "the compiled path checks its inputs differently from eager (a decomposition without the check)"
                if region == "raises on one path only" else
                "the compiled path promotes mixed input dtypes otherwise than eager",
        "relation": "the two sides of the identity compute differently (another formula or rounding order), "
                    "though neither alone fails",
    }.get(kind, "")
