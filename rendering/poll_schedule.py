"""When a render that is still going is checked again.

The backoff (1 s, growing by a quarter per check up to 15 s) is the longest wait. When the provider
reports progress, the check moves up to the end that progress points to. A provider that says when to
look again (the Videos API's openai-poll-after-ms) sets the shortest wait: its SDK never asks sooner, and
neither do we.

Where the end is: a render's progress is read at each check, so a value says little by itself (a report in
steps of 25 % reads "25" from a quarter to half way). The moment a value *changes* says more: the render
crossed it between the check before and this one. `Pace` carries what the checks of one render have seen
from step to step, and estimates the end from the last crossing (taken at the earlier check, so the
estimate errs early), at the pace from the submit to it. Until the value has moved once, the estimate is
the rest at the pace so far, which is late by up to one step. Checks then come every hint's worth only
from about the end on, instead of every hint from the start: on the 30-clip benchmark less than half
the status calls, each clip seen as soon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Polling interval bounds for remote providers: start quick, back off to this ceiling.
POLL_MIN_SECONDS = 1.0
POLL_MAX_SECONDS = 15.0
# The quickest checks a provider's own "poll after" hint can ask for.
POLL_HINT_FLOOR_SECONDS = 0.25

# Each wait is this much longer than the last: a clip is seen at most ~25 % of its render time after it
# finished (1.5 let a 10 s render wait until 13.2 s), for about two more status checks per clip.
POLL_GROWTH = 1.25

# A render whose progress points to an end sooner than the backoff's next check is checked then, but
# never more often than once per this share of the time it has taken so far: a report stuck at 99 % must
# not turn into a check a second for minutes.
POLL_ELAPSED_SHARE = 0.05


def poll_delay(polls: int) -> float:
    """Backoff for providers that do not say when to poll: 1 s, 1.25 s, 1.56 s ... up to 15 s."""
    return min(POLL_MAX_SECONDS, POLL_MIN_SECONDS * POLL_GROWTH**polls)


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _readable(progress: float | None) -> bool:
    """A progress reading a pace can take in: a finite number, not below 0."""
    return progress is not None and math.isfinite(progress) and progress >= 0


def _usable(progress: float | None) -> bool:
    return progress is not None and math.isfinite(progress) and 0 < progress < 100


def expected_remaining(progress: float | None, elapsed: float | None) -> float | None:
    """Seconds until a render that is `progress` % done after `elapsed` seconds finishes, at the pace so
    far; None when the report says nothing usable (no progress yet, done, or not a number)."""
    if not _usable(progress) or elapsed is None or not math.isfinite(elapsed) or elapsed <= 0:
        return None
    return elapsed * (100.0 - progress) / progress  # type: ignore[operator]


@dataclass(frozen=True)
class Pace:
    """What the checks of one render have seen: the last progress value, when (time.time()) the last check
    that read it ran, and the end (time.time()) that the last change of value points to, if it changed."""

    progress: float
    seen_at: float
    end_at: float | None = None

    def after(self, progress: float | None, now: float, since: float) -> Pace:
        """The pace once a check at `now` has read `progress` of a render submitted at `since` (0 when not
        known). A value that moved up was crossed after the last check that read the old one: taken at
        that check, so at the pace from the submit to it the render ends no later than `end_at` says. A
        check too early costs one status call (the next follows the hint); one too late costs the user
        the difference."""
        if not _readable(progress):
            return self
        if progress == self.progress:  # not crossed yet: the crossing is after this check
            return Pace(self.progress, now, self.end_at)
        if progress < self.progress:  # a report going back says nothing about the pace
            return self
        end_at = self.end_at
        crossed = self.seen_at
        if since > 0 and _usable(progress) and crossed > since:
            end_at = since + (crossed - since) * 100.0 / progress
        return Pace(progress, now, end_at)

    def as_task_arg(self) -> list[float | None]:
        """JSON for a task's arguments (Celery messages carry JSON)."""
        return [self.progress, self.seen_at, self.end_at]

    @classmethod
    def from_task_arg(cls, value: Any) -> Pace | None:
        """The pace a task carried, or None for anything else (no pace yet, an older message, junk)."""
        if not isinstance(value, list | tuple) or len(value) != 3:
            return None
        progress, seen_at, end_at = value
        numbers = (progress, seen_at) + (() if end_at is None else (end_at,))
        if not all(_finite_number(v) for v in numbers):
            return None
        return cls(float(progress), float(seen_at), None if end_at is None else float(end_at))


def observe(pace: Pace | None, progress: float | None, now: float, since: float) -> Pace | None:
    """`pace` after a check at `now` read `progress`; a first pace from the first usable reading."""
    if pace is not None:
        return pace.after(progress, now, since)
    if not _readable(progress):
        return None
    return Pace(float(progress), now)


def next_poll_delay(
    *,
    polls: int,
    progress: float | None = None,
    elapsed: float | None = None,
    asked: float | None = None,
    end_in: float | None = None,
) -> float:
    """Seconds until the next status check of a render that is still going, after `polls` checks.

    The backoff (poll_delay) is the longest wait. The check moves up to the expected end: `end_in`
    seconds from now when the checks have seen the progress move (Pace), else the rest at the pace so far
    from `progress` after `elapsed` seconds; but never sooner than POLL_ELAPSED_SHARE of the elapsed time.
    The shortest wait is what the provider asked for (`asked`, at least POLL_HINT_FLOOR_SECONDS: no hint
    may turn waiting into a busy loop), else POLL_MIN_SECONDS."""
    hinted = asked is not None and math.isfinite(asked) and asked > 0
    floor = max(asked, POLL_HINT_FLOOR_SECONDS) if hinted else POLL_MIN_SECONDS  # type: ignore[type-var]
    delay = poll_delay(polls)
    remaining = (
        end_in if end_in is not None and math.isfinite(end_in) else expected_remaining(progress, elapsed)
    )
    if remaining is not None:
        share = POLL_ELAPSED_SHARE * elapsed if elapsed is not None and math.isfinite(elapsed) else 0.0
        delay = min(delay, max(remaining, share))
    return max(delay, floor)
