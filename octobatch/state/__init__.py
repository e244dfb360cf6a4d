"""Run state: what octobatch knows about each job of a manifest, and keeping it safe.

Use `StateStore.open(manifest_path)` in a run (it takes the run lock, replays what a killed
run left in the journal and folds it into the lockfile) and `load_state(manifest_path)` to read
without the lock (`plan`, `status`, the gallery). `store.state.jobs` maps job ids to immutable
`LockEntry` values; change them only through the store's named transitions, each of which
journals one record: `pending(job_id, spec_hash=, model=, spec=, idempotency_key=)` (keeps
the job's takes, review and spend), `submitting(job_id, cost=)` (counts the POST's cost),
`not_created(job_id, cost=)` (takes it back after a certain refusal),
`task_recorded(job_id, task_id=, status=, attempts=, submitted_at=)`,
`uncertain(job_id, attempts=)`, `back_to_pending`, `status_seen(job_id, status)`,
`awaiting_task`, `completed(job_id, video_url=, output=, sha256=, bytes=, completed_at=,
moved=)` (adds or refreshes a take), `failed(job_id, code, message)`,
`reviewed(job_id, decision=, take=, at=)`, `take_selected(job_id, take, moved)` (the files are
moved by `octobatch.takes.select_take`), and `put(job_id, entry)` / `remove(job_id)` for whole
entries. `store.spent` (O(1)) and `LockState.spent` are the manifest's recorded spend.
`await store.sync()` returns once every change so far is durable (concurrent callers share one
fsync); `sync_now()` is its blocking form for signal paths; `close()` syncs, compacts and
releases the lock (idempotent). Compaction is the store's own business: it happens in the
flush thread when the journal has outgrown the lockfile, and on `close()`; nobody else calls it.

Modules: `entry` (Status, LockEntry, LockState, field validation), `format` (the lockfile's
bytes, its version and the upgrade table), `journal` (records, replay), `runlock` (the flock),
`backend` (the Protocol a store writes through), `files` (the local backend: the lockfile,
journal and run lock beside the manifest), `store` (StateStore, load_state).
"""

from octobatch.state.backend import Backend, Stored
from octobatch.state.entry import LockEntry, LockState, Review, Status, Take
from octobatch.state.files import (
    LocalFiles,
    journal_path_for,
    lock_path_for,
    read_lockfile,
    run_lock_path_for,
    write_lockfile,
)
from octobatch.state.format import LOCK_VERSION, parse_lockfile, render_lockfile
from octobatch.state.store import COMPACT_MIN_BYTES, StateStore, load_state

__all__ = [
    "COMPACT_MIN_BYTES",
    "LOCK_VERSION",
    "Backend",
    "LocalFiles",
    "LockEntry",
    "LockState",
    "Review",
    "StateStore",
    "Status",
    "Stored",
    "Take",
    "journal_path_for",
    "load_state",
    "lock_path_for",
    "parse_lockfile",
    "read_lockfile",
    "render_lockfile",
    "run_lock_path_for",
    "write_lockfile",
]
