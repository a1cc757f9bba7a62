"""Progress bars of long loops (builds, training): live on a terminal, a line every few seconds elsewhere.

tqdm redraws its bar in place with carriage returns, several times a
second. Sent to a file or a pipe (a batch job's log, ``2> build.log``),
those redraws pile up into one line of tens of kilobytes. So when the
stream is not a terminal the bar is written as plain lines instead, at most
one every :data:`LINE_INTERVAL` seconds and one at the end. It lives here
because the build (pipeline) and training (train) both use it and neither
may import the other.
"""
from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm
from tqdm.auto import tqdm as live_tqdm

LINE_INTERVAL = 10.0
"""Seconds between two progress lines when the stream is not a terminal."""


LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
"""tqdm's default bar as a line: the same numbers without the bar drawing."""


class LineProgress(tqdm):
    """A tqdm bar written as whole lines, at most one every ``mininterval`` seconds, and one at the end.

    Never writes a carriage return, so a log file keeps one readable line
    per report; a postfix change (``set_postfix``) waits for the interval
    too.
    """

    _line_at: float | None = None
    _line_n: float | None = None

    def refresh(self, nolock: bool = False, lock_args: Any = None) -> bool:
        if self._line_at is not None and self._time() - self._line_at < self.mininterval:
            return False
        return super().refresh(nolock=nolock, lock_args=lock_args)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its line before it moves on: nothing to clear
            return False
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        self._line_at, self._line_n = self._time(), self.n
        return True

    def close(self) -> None:
        if not self.disable and self.n != self._line_n:
            self.display()  # where it ended, when the last line is older
        super().close()


def progress_bar(iterable: Any = None, *, enabled: bool = True, file: IO[str] | None = None,
                 interval: float = LINE_INTERVAL, **kwargs: Any) -> tqdm:
    """A tqdm bar: live on a terminal, :class:`LineProgress` lines elsewhere, nothing when not ``enabled``.

    Parameters
    ----------
    iterable : iterable, optional
        As tqdm's.
    enabled : bool
        False: a disabled bar (``--no-progress``).
    file : stream, optional
        Where to write; default stderr.
    interval : float
        Seconds between lines when ``file`` is not a terminal.
    **kwargs
        tqdm's options; a ``bar_format`` loses its ``|{bar}|`` in lines
        (default there: :data:`LINE_FORMAT`).
    """
    stream = file if file is not None else sys.stderr
    if not enabled or _is_terminal(stream):
        return live_tqdm(iterable, file=stream, disable=not enabled, **kwargs)
    kwargs["bar_format"] = kwargs.get("bar_format", LINE_FORMAT).replace("|{bar}|", " ").replace("{bar}", "")
    for option in ("dynamic_ncols", "leave"):
        kwargs.pop(option, None)
    return LineProgress(iterable, file=stream, mininterval=interval, maxinterval=max(interval, 10.0),
                        leave=False, **kwargs)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
