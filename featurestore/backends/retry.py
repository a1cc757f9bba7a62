"""Patience with remote back-ends: retries with back-off, a time-out per request and a cap per file.

A network read may fail for a moment (a reset connection, HTTP 503, a 404
from a cache that has not caught up) and then succeed, so reads of
:attr:`~.base.StoreBackend.remote` back-ends are retried with exponential
back-off. A server that accepts the connection and never answers must not
hold a command for long (aiohttp's default is five minutes per request, so
five attempts took 25 minutes): each request is abandoned after
``timeout`` seconds without an answer, and one file's attempts all together
after ``deadline`` seconds. What gives up says which URL, how long it
waited and how often it tried, in one sentence.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a remote read is tried before it is given up.

    Attributes
    ----------
    attempts : int
        Reads in all (1 = no retry).
    first_delay : float
        Seconds before the second attempt.
    factor : float
        Each further delay is this many times the previous one.
    timeout : float
        Seconds one request may go without an answer (connecting, or
        between two received blocks) before it is abandoned and retried.
    deadline : float or None
        Seconds one file may take, all attempts and waits together; None
        means four times ``timeout``.
    """

    attempts: int = 5
    first_delay: float = 0.25
    factor: float = 2.0
    timeout: float = 30.0
    deadline: float | None = None

    def __post_init__(self):
        if (self.attempts < 1 or self.first_delay < 0 or self.factor < 1 or not self.timeout > 0
                or (self.deadline is not None and not self.deadline > 0)):
            raise ValueError(f"{self}: attempts must be >= 1, first_delay >= 0, factor >= 1, timeout and deadline > 0")

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The default policy, with ``timeout`` from ``$MEPIPE_TIMEOUT`` when it is set."""
        value = os.environ.get(TIMEOUT_ENV)
        if not value:
            return cls()
        try:
            return cls(timeout=float(value))
        except ValueError:
            raise ConfigError(f"${TIMEOUT_ENV}={value!r}: give the seconds a remote request may wait, e.g. 30"
                              ) from None

    @property
    def cap(self) -> float:
        """Seconds one file may take in all (``deadline``, else four times ``timeout``)."""
        return self.deadline if self.deadline is not None else 4 * self.timeout

    def delays(self) -> list[float]:
        """The waits between attempts (``attempts - 1`` of them)."""
        return [self.first_delay * self.factor ** i for i in range(self.attempts - 1)]


TIMEOUT_ENV = "MEPIPE_TIMEOUT"
"""Environment variable: seconds a remote request may go without an answer (default 30)."""


class FetchError(DataError, RuntimeError):
    """A remote read failed: for good (HTTP 403, ...), or on every attempt, or past its time cap."""


class RemoteTimeout(TimeoutError):
    """A request got no answer in time; the message names the URL and the seconds waited."""


def network_error(err: BaseException) -> bool:
    """Whether an error comes from the network or the remote file system (not from a bug in the caller)."""
    try:
        from aiohttp import ClientError
    except ImportError:
        ClientError = OSError
    return isinstance(err, (OSError, TimeoutError, asyncio.TimeoutError, ClientError)) or isinstance(
        getattr(err, "status", None), int)


def is_transient(err: BaseException) -> bool:
    """Whether a remote read error may go away on retry (network trouble, server overload, a 404 for a listed file)."""
    if isinstance(err, DataError) or not network_error(err):
        return False
    status = getattr(err, "status", None)
    if isinstance(status, int):
        return status >= 500 or status in (404, 408, 429)
    return True


def _describe(err: BaseException) -> str:
    text = str(err)
    return text if isinstance(err, RemoteTimeout) else f"{type(err).__name__}: {text}" if text else type(err).__name__


async def read_retrying(backend: Any, name: str, limit: int, retry: RetryPolicy, *, retry_missing: bool = True
                        ) -> bytes:
    """``backend.read(name, limit)``, retried with back-off on transient errors when the back-end is remote.

    Parameters
    ----------
    retry_missing : bool
        Retry a missing file too (a file the manifest lists, whose 404 is
        taken as transient); otherwise ``FileNotFoundError`` is raised at once.

    Raises
    ------
    FileNotFoundError
        The file is absent (after the retries, when ``retry_missing``).
    FetchError
        Every attempt failed with a transient error, the attempts took
        longer than ``retry.cap`` seconds, or one failed with another
        network error. The message gives the count, the seconds and the last error.
    """
    if not backend.remote:
        return await backend.read(name, limit)
    started = time.monotonic()
    delays = [*retry.delays(), None]
    for attempt, delay in enumerate(delays, start=1):
        left = retry.cap - (time.monotonic() - started)
        try:
            return await asyncio.wait_for(backend.read(name, limit), timeout=max(left, 0.001))
        except FileNotFoundError:
            if not retry_missing or delay is None:
                raise
            err_text = "not found"
        except DataError:  # refused for what the store is (outside it, too large, access denied): no retry
            raise
        except Exception as err:
            if not network_error(err):
                raise
            waited = time.monotonic() - started
            if isinstance(err, asyncio.TimeoutError) and not isinstance(err, RemoteTimeout):
                err = RemoteTimeout(f"{backend.where}/{name}: no complete answer within the {retry.cap:g} s allowed "
                                    "for one file")
            if not is_transient(err):
                raise FetchError(_describe(err)) from None
            if delay is None or waited + delay >= retry.cap:
                raise FetchError(f"{attempt} attempt{'s' if attempt > 1 else ''} over {waited:.1f} s failed (each "
                                 f"request may wait {retry.timeout:g} s for an answer, one file {retry.cap:g} s), the "
                                 f"last with {_describe(err)}") from None
            err_text = _describe(err)
        log.info("%s: reading %s failed (%s); retrying in %.2f s", backend.where, name, err_text, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")
