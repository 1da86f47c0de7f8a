"""Worker targets for the WorkerPool tests: plain functions (no framework), each misbehaving in one way."""

from __future__ import annotations

import ctypes
import time
from multiprocessing.connection import Connection

import numpy as np


def echo(channel: Connection) -> None:
    """Answers every message with itself, doubled, until it gets None or its pipe closes."""
    try:
        while (message := channel.recv()) is not None:
            channel.send(message * 2)
    except EOFError:
        return


def talk_then_segfault(count: int, channel: Connection) -> None:
    """Sends `count` messages, then reads address 0 (SIGSEGV)."""
    for i in range(count):
        channel.send(i)
    ctypes.string_at(0)


def exit_with(code: int, channel: Connection) -> None:
    raise SystemExit(code)


def hello_then_hang(channel: Connection) -> None:
    channel.send("hello")
    while True:
        time.sleep(60)


def hoard_memory(channel: Connection) -> None:
    """Says hello, then holds 64 MiB more every 20 ms (every page touched) until it is stopped."""
    channel.send("hello")
    hoard = []
    while True:
        hoard.append(np.ones(8 * 2**20))
        time.sleep(0.02)
