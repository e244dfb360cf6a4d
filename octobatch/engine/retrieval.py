"""Getting one job's result: wait for its task, then download the video and put it in place.

A known task is never given up because the network is down: polls and downloads wait out
outages for as long as the run goes on; only the provider's own answers (failed, gone,
refused) end the job, and a video moved into place is journaled before anything can cancel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from octobatch import progress as ev
from octobatch.download import (
    RESUME_AT_ONCE_BYTES,
    LocalWriteError,
    PermanentDownloadError,
    keep_for_resume,
    local_error,
    place,
)
from octobatch.engine.context import JobBase, now_iso
from octobatch.outlast import outlast_cancellation
from octobatch.owned import Recorded, in_the_way
from octobatch.providers.base import TaskState, VideoStatus
from octobatch.retry import PollPacer
from octobatch.state import LockEntry, Status
from octobatch.takes import keep_earlier_takes
from octobatch.transport import (
    Ambiguous,
    ApiError,
    AuthError,
    BadRequest,
    ConnectionFailed,
    Downloaded,
    RateLimited,
    ServerError,
    TaskNotFound,
    TruncatedDownload,
    UrlExpired,
)

# Network trouble on a known task: waited out for as long as the run goes on.
_TRANSIENT = (ConnectionFailed, Ambiguous, ServerError, RateLimited, TruncatedDownload)


class Retrieval(JobBase):
    """Polls the job's task to its end, then downloads its video."""

    async def _await_result(self, task_id: str, *, fresh: bool,
                            journaled: asyncio.Future[None] | None = None) -> VideoStatus:
        """Poll until the task completes; anything else ends the job for this run. A fresh
        task's id is being journaled (`journaled`) while the first interval passes."""
        pacer = PollPacer(self.ctx.options.poll_interval, self.ctx.clock(), fresh=fresh,
                          rng=self.ctx.rng)
        delay = pacer.first_delay()
        unknown_polls = 0
        last: tuple[TaskState, int | None] | None = None
        while True:
            if self.deadline is not None:
                delay = min(delay, max(self.deadline - self.ctx.clock(), 0.0))
            if delay > 0:
                await self.ctx.sleep(delay)
            if journaled is not None:
                await journaled  # the task id is durable before it is polled
                journaled = None
            video = await self._poll(task_id)
            if self._waiting_for is not None:
                # The provider answers again: say where the task is, even if unchanged.
                self._waiting_for, last = None, None
            now = self.ctx.clock()
            if video.state is TaskState.COMPLETED:
                self.ctx.emit(ev.Completed(job_id=self.job_id, task_id=task_id))
                return video
            if video.state is TaskState.FAILED:
                error = video.error or {}
                self._fail(task_id, error.get("code", "failed"),
                           error.get("message", "the provider reported failure"))
            if video.state is TaskState.UNKNOWN:
                unknown_polls += 1
                if unknown_polls == 1:
                    self.ctx.emit(ev.UnknownStatus(job_id=self.job_id, task_id=task_id,
                                                   status=video.status_word))
                if unknown_polls >= self.policy.unknown_status_polls:
                    self._unfinished(task_id, f"the provider kept reporting status "
                                     f"{video.status_word!r}; rerun later to check again")
            else:
                unknown_polls = 0
                status = Status.RUNNING if video.state is TaskState.RUNNING else Status.QUEUED
                self.store.status_seen(self.job_id, status)  # journals only a change
                if last != (video.state, video.progress):
                    self.ctx.emit(ev.Progressed(job_id=self.job_id, task_id=task_id,
                                                status=video.state.value,
                                                progress=video.progress))
                last = (video.state, video.progress)
            self._check_timeout(task_id, now)
            delay = pacer.next_delay(now, video.progress)

    async def _poll(self, task_id: str) -> VideoStatus:
        """One poll, patient: a known task is never given up because the network is down."""
        attempt = 0
        not_found_since: float | None = None
        not_found = 0
        while True:
            try:
                video = await self.provider.poll(task_id)
                self.ctx.reach.answer()
                self.gate.provider_answered()
                return video
            except TaskNotFound as exc:
                # A lagging database can miss a task just made: fail only when it persists.
                self.ctx.reach.answer()
                now = self.ctx.clock()
                not_found_since = now if not_found_since is None else not_found_since
                not_found += 1
                if (not_found >= self.policy.task_not_found_polls
                        and now - not_found_since >= self.policy.task_not_found_window):
                    self._fail(task_id, "task_not_found", exc.message)
                delay = max(self.ctx.options.poll_interval,
                            self.policy.task_not_found_window
                            / max(self.policy.task_not_found_polls - 1, 1))
                await self._pause(delay, task_id)
            except AuthError as exc:
                self._stop(str(exc))
                self._unfinished(task_id, f"cannot poll: {exc}")
            except BadRequest as exc:
                self._fail(task_id, exc.code or "bad_request", exc.message)
            except ApiError as exc:
                attempt += 1
                if isinstance(exc, ConnectionFailed) and self.ctx.reach.refusal(exc):
                    self._unfinished(task_id, f"cannot poll: {exc.message}; check --base-url "
                                     "and the network (the task id is kept)")
                # What the job waits for now, once per stretch: the terminal shows it.
                reason = "rate_limit" if isinstance(exc, RateLimited) else "outage"
                if self._waiting_for != reason:
                    self._waiting_for = reason
                    self.ctx.emit(ev.Waiting(job_id=self.job_id, reason=reason,
                                             detail=_short(exc)))
                await self._retry_wait("poll", attempt, exc, task_id)

    async def _download(self, video: VideoStatus) -> None:
        task_id = video.task_id
        options = self.ctx.options
        url = video.video_url or self.provider.content_url(task_id)
        final = options.output_dir / f"{self.job_id}.mp4"
        partial = options.output_dir / f".{self.job_id}.mp4.part"
        refused = 0  # answers that are not the network's fault
        attempt = 0
        try:
            while True:
                attempt += 1
                # Moving the file into place is part of the download's last write, in the
                # file threads (directory operations can wait on the disk, which the event
                # loop must not); the download waits for it even when cancelled, and a video
                # in place is journaled before anything else happens.
                placing = _Placing(self.store.state.jobs[self.job_id], partial, final,
                                   self.store.lock_dir)
                try:
                    got = await self.provider.download(url, partial, placing)
                    if placing.got is None:  # a provider that does not take `then`
                        await outlast_cancellation(asyncio.get_running_loop().run_in_executor(
                            None, placing, got))
                    break
                except asyncio.CancelledError:
                    if placing.got is not None and placing.blocker is None:
                        self._record(task_id, url, final, placing.got, placing.moved)
                    raise
                except UrlExpired:
                    refused += 1
                    if refused >= self.policy.download_attempts:
                        self._unfinished(task_id, "the result URL kept failing; rerun "
                                         "to download it again")
                    # Signed links expire: a poll hands out a fresh one. Never resubmit.
                    fresh = await self._poll(task_id)
                    url = fresh.video_url or self.provider.content_url(task_id)
                except (AuthError, PermanentDownloadError) as exc:
                    self._unfinished(task_id, f"download refused: {exc}")
                except LocalWriteError as exc:
                    self._unfinished(task_id, str(exc))
                except ApiError as exc:
                    if isinstance(exc, TruncatedDownload) \
                            and exc.progressed >= RESUME_AT_ONCE_BYTES:
                        attempt = 0  # the bytes are kept: resume at once
                        continue
                    if not isinstance(exc, _TRANSIENT):
                        refused += 1
                        if refused >= self.policy.download_attempts:
                            self._unfinished(task_id, f"download failed: {exc}; rerun to "
                                             "download it again (the task is not resubmitted)")
                    if attempt == 1 or self._waiting_for != "download":
                        self._waiting_for = "download"
                        self.ctx.emit(ev.Waiting(job_id=self.job_id, reason="download",
                                                 detail=_short(exc)))
                    if self.deadline is not None and self.ctx.clock() >= self.deadline:
                        self._unfinished(task_id, f"download failed until --timeout: {exc}; "
                                         "rerun to download it (the task is not resubmitted)")
                    await self._retry_wait("download", attempt, exc, task_id)
            if placing.blocker is not None:
                self._unfinished(task_id, f"{placing.blocker} (the task is kept)")
            self._record(task_id, url, final, got, placing.moved)
        except BaseException:
            keep_for_resume(partial)  # the next run continues from these bytes when it can
            raise

    def _record(self, task_id: str, url: str, final: Path, got: Downloaded,
                moved: dict[int, str]) -> None:
        """Journal the video now at `final` (no await: nothing can cut it short)."""
        output = self.ctx.output_prefix + final.name  # final is in the output folder
        self.store.completed(self.job_id, video_url=url, output=output, sha256=got.sha256,
                             bytes=got.bytes, completed_at=now_iso(), moved=moved)
        # Not awaited: losing this record in a crash costs a second download, never money,
        # and the next sync (another job's, or the end of the run) makes it durable anyway.
        self.ctx.emit(ev.Downloaded(job_id=self.job_id, task_id=task_id,
                                    path=self.ctx.output_abs + final.name, bytes=got.bytes,
                                    sha256=got.sha256))


class _Placing:
    """The move of a whole download into place, run in the file threads (`transport.Finish`):
    an earlier take at `final` moves aside, then the new file goes there unless something
    else is in the way (`blocker` says what)."""

    def __init__(self, entry: LockEntry, partial: Path, final: Path, lock_dir: Path) -> None:
        self.entry, self.partial, self.final, self.lock_dir = entry, partial, final, lock_dir
        self.got: Downloaded | None = None  # set once it ran
        self.moved: dict[int, str] = {}
        self.blocker: str | None = None

    def __call__(self, got: Downloaded) -> None:
        try:
            self.moved, self.blocker = _keep_and_place(self.entry, self.partial, self.final,
                                                       self.lock_dir, got)
        except OSError as exc:  # keeping an earlier take's file failed
            raise local_error(exc, self.final) from None
        self.got = got


def _keep_and_place(entry: LockEntry, partial: Path, final: Path, lock_dir: Path,
                    got: Downloaded) -> tuple[dict[int, str], str | None]:
    """Move an earlier take living at `final` aside, then the new file into place unless
    something else is in the way; (the takes moved, why the file was not placed)."""
    moved = keep_earlier_takes(entry, final, lock_dir)
    # After the earlier take moved aside, whatever is at `final` is someone else's file
    # unless it already holds these very bytes.
    blocker = in_the_way(final, entry, lock_dir, Recorded(got.sha256, got.bytes))
    if blocker is None:
        place(partial, final, got.folder)
    return moved, blocker


def _short(exc: ApiError) -> str:
    text = exc.message
    return text if len(text) <= 80 else text[:77] + "..."
