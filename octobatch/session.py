"""One run of one manifest: open its state, make the providers, plan, run the engine, finish.

The library (`octobatch.run_async`), the `run` command and the tests all run a manifest
through this one sequence, so every run finishes the same way, also when it is cancelled or
raises: the journal is synced, the lockfile compacted, the run lock released, the gallery
written.

    async with RunSession(manifest, base_url, api_key, options, emit) as session:
        result = await session.run(session.plan())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

from octobatch import plan as planning
from octobatch.download import check_output_dir
from octobatch.engine import Engine, EngineOptions, RunResult
from octobatch.errors import OctobatchError
from octobatch.gallery import write_gallery
from octobatch.manifest import Manifest
from octobatch.manifest.outputs import claim_output_dir, write_root
from octobatch.progress import Emit, discard
from octobatch.providers import Providers
from octobatch.providers.base import ProviderFactory
from octobatch.state import StateStore
from octobatch.transport import Transport


def check_output_folder(manifest: Manifest, output_dir: Path) -> Path | None:
    """Fail before anything is paid for when `output_dir` cannot take the manifest's videos;
    return the folder it is walked from (see `manifest.outputs.write_root`)."""
    # No symlink is followed to the folder from the project (or the current folder) that
    # holds it, also where there is no git (a cloned archive may hold `out -> ~/x`).
    root = write_root(output_dir, manifest.path)
    check_output_dir(output_dir, root=root)
    return root


class RunSession:
    """Owns a manifest's state store, transport and engine for the length of one run."""

    def __init__(
        self,
        manifest: Manifest,
        base_url: str,
        api_key: str,
        options: EngineOptions,
        emit: Emit = discard,
        *,
        registry: Mapping[str, ProviderFactory] | None = None,
    ) -> None:
        self.manifest = manifest
        self.options = options
        self._base_url = base_url
        self._api_key = api_key
        self._emit = emit
        self._registry = registry
        self._exits = AsyncExitStack()
        self._store: StateStore | None = None
        self._engine: Engine | None = None
        self.gallery_error: str | None = None  # why the gallery could not be written

    async def __aenter__(self) -> RunSession:
        root = check_output_folder(self.manifest, self.options.output_dir)
        if self.manifest.default_output:  # marked as this manifest's
            claim_output_dir(self.options.output_dir, self.manifest.path, root=root)
        self._store = StateStore.open(self.manifest.path)  # takes the run lock first
        self._exits.callback(self._finish, self._store)
        transport = await self._exits.enter_async_context(
            Transport(self._base_url, self._api_key, concurrency=self.options.concurrency,
                      download_limits=self.options.download))
        self._engine = Engine(self._store, Providers(transport, self._registry), self.options,
                              self._emit)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._exits.aclose()

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError("RunSession used outside 'async with'")
        return self._store

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("RunSession used outside 'async with'")
        return self._engine

    def plan(self, *, retry_failed: bool = False, replace: Sequence[str] = (),
             replace_rejected: bool = False) -> planning.Plan:
        """What this run will do, from the state as this session opened it."""
        return planning.plan_manifest(self.manifest, self.store.state, retry_failed=retry_failed,
                                      replace=replace, replace_rejected=replace_rejected)

    async def run(self, plan: planning.Plan) -> RunResult:
        return await self.engine.run(plan)

    def tally(self) -> RunResult:
        """The state of every job of the manifest now (also after an interrupted run)."""
        return self.engine.result([job.id for job in self.manifest.jobs])

    def _finish(self, store: StateStore) -> None:
        # Sync, compact and release the lock, then the gallery from the final state: whatever
        # happened is in the lockfile and on the page, and the next run can start. A page that
        # cannot be written (a folder made read-only mid-run) loses nothing: it is reported,
        # and the caller decides whether the run goes on.
        try:
            store.close()
        finally:
            try:
                write_gallery(self.manifest, store.state)
            except OctobatchError as exc:
                self.gallery_error = str(exc)
