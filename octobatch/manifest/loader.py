"""Manifest file -> validated, expanded job specs: the one call that reads a manifest.

Steps: read the YAML with positions (yamlpos), check the document's shape
(manifest.schema.json), expand each entry into drafts (defaults, matrix: expand), build each
draft into a job (templates, model schema, local files, hash, id: spec), and report defaults
no job could use. Every problem in the file is collected; the caller gets either a complete
Manifest or one ManifestError carrying all of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octobatch.costs import Price
from octobatch.errors import Diagnostic, ManifestError
from octobatch.inputs import InputFileError, OctobatchError
from octobatch.jobs import JobSpec
from octobatch.manifest.expand import Defaults, entry_size, expand_entry
from octobatch.manifest.files import FileChecker
from octobatch.manifest.limits import ENV_NAMES, Limits
from octobatch.manifest.outputs import default_output_dir, outside_reason
from octobatch.manifest.report import Reporter
from octobatch.manifest.rows import Row, RowsProblem, read_rows
from octobatch.manifest.spec import JobBuilder
from octobatch.manifest.yamlpos import YamlError, parse
from octobatch.models import MODELS_PATH_ENV, Model, manifest_models
from octobatch.paths import followed
from octobatch.schemas import (
    default_schema_dir,
    did_you_mean,
    document_validator,
    field_label,
    kind,
    problems,
    show,
)
from octobatch.state import lock_path_for


@dataclass(frozen=True)
class Settings:
    """Run settings from the manifest; command-line flags override them."""

    concurrency: int | None = None
    poll_interval: float | None = None
    timeout: float | None = None
    prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)  # model -> price (plan's costs)
    currency: str | None = None
    max_cost: float | None = None  # cap on the recorded spend (issue 10); --max-cost wins


@dataclass(frozen=True)
class Manifest:
    path: Path  # as given by the user (used in messages)
    jobs: tuple[JobSpec, ...]  # in manifest order
    settings: Settings
    output_dir: Path  # absolute
    lock_path: Path
    # No output_dir anywhere: the folder under ./output is claimed for this manifest when it
    # runs (manifest/outputs.py), so that same-named manifests never share one.
    default_output: bool = False


def load_manifest(
    path: str | Path,
    *,
    allow_outside_files: bool = False,
    allow_outside_output: bool = False,
    output_dir: str | Path | None = None,
    schema_dir: Path | None = None,
    limits: Limits | None = None,
) -> Manifest:
    """Read, expand and validate one manifest; raises ManifestError with all its problems.

    `output_dir` (from the command line, relative to the current directory) overrides the
    manifest's own, which is relative to the manifest file; the default is
    `<cwd>/output/<manifest stem>`. `schema_dir` replaces the shipped schemas (tests, new models).
    `limits` default to Limits.from_env(). The manifest's `output_dir` must stay inside its
    project or the current directory unless `allow_outside_output`.
    """
    limits = limits or Limits.from_env()
    with _collector_paused():
        # The loader (and the YAML node tree it keeps for positions) is freed inside _load,
        # before the collector is back, so it never walks those nodes.
        return _load(Path(path), _Access(allow_outside_files, allow_outside_output), output_dir,
                     schema_dir or default_schema_dir(), limits)


def load_manifests(
    paths: Iterable[str | Path],
    *,
    allow_outside_files: bool = False,
    allow_outside_output: bool = False,
    output_dir: str | Path | None = None,
    schema_dir: Path | None = None,
    limits: Limits | None = None,
) -> list[Manifest]:
    """Load several manifests; one ManifestError carries the problems of every file.

    Same-named manifests loaded together get distinct default output folders, as they would
    one after the other (the first one's folder is marked for it when it runs).
    """
    manifests: list[Manifest] = []
    diagnostics: list[Diagnostic] = []
    taken: dict[Path, Path] = {}  # default output folder -> the manifest it went to
    for path in paths:
        try:
            manifest = load_manifest(path, allow_outside_files=allow_outside_files,
                                     allow_outside_output=allow_outside_output,
                                     output_dir=output_dir, schema_dir=schema_dir,
                                     limits=limits)
        except ManifestError as exc:
            diagnostics.extend(exc.diagnostics)
            continue
        if manifest.default_output:
            folder = default_output_dir(manifest.path, taken)
            taken[folder] = Path(os.path.realpath(manifest.path))
            manifest = dataclasses.replace(manifest, output_dir=folder)
        manifests.append(manifest)
    if diagnostics:
        raise ManifestError(diagnostics)
    return manifests


@dataclass(frozen=True)
class _Access:
    """What the user lets this manifest reach beyond its own places."""

    files: bool  # read local files outside the manifest's folder
    output: bool  # write outside its project and the current folder


def _load(path: Path, access: _Access, output_dir: str | Path | None, schema_dir: Path,
          limits: Limits) -> Manifest:
    path = followed(path)  # a symlinked manifest is its target: its folder, its lockfile
    data, reporter = _read(path)
    return _Loader(path, data, reporter, access, schema_dir, limits).load(output_dir)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a manifest loads.

    A 10,000-job load allocates a few hundred thousand containers and frees almost none of
    them before it returns, so the collector would walk the growing heap again and again
    (a third or more of the load time) without finding anything: the data is acyclic.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class NotAManifest(ManifestError):
    """The path is one of octobatch's own state files (`validate manifests/*` meets them)."""


# What each state file beside `name.yaml` is, by the end of its name.
_STATE_FILES = {
    ".lock.json": "the lockfile (octobatch's record of the jobs of {})",
    ".lock.journal": "the journal (octobatch's log of the runs of {})",
    ".lock.run": "the run lock of {}",
}


def _read(path: Path) -> tuple[dict[str, Any], Reporter]:
    """The manifest's document and a reporter that knows where each of its values is."""
    reporter = Reporter(str(path))
    for suffix, what in _STATE_FILES.items():
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            stem = path.name.removesuffix(suffix)
            manifest = next((f"{stem}{ext}" for ext in (".yaml", ".yml")
                             if path.with_name(stem + ext).exists()), f"{stem}.yaml")
            raise NotAManifest([Diagnostic(str(path), 0, 0,
                                           f"{what.format(manifest)}, not a manifest",
                                           hint=f"give the manifest, {manifest}")])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise reporter.fatal("no such file") from None
    except IsADirectoryError:
        raise reporter.fatal("is a directory; give the manifest's YAML file") from None
    except OSError as exc:
        raise reporter.fatal(f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise reporter.fatal(
            f"not a UTF-8 text file (byte {exc.start + 1} is invalid)",
            hint="a manifest is a YAML file saved as UTF-8",
        ) from None
    try:
        data, reporter.smap = parse(text)
    except YamlError as exc:
        line, column = (exc.mark.line, exc.mark.column) if exc.mark else (0, 0)
        raise reporter.fatal(f"invalid YAML: {exc.message}", line=line, column=column,
                             hint=exc.hint) from None
    if data is None:
        raise reporter.fatal("the manifest is empty", hint="start with 'version: 1' and 'jobs:'")
    if not isinstance(data, dict):
        raise reporter.fatal(
            f"the manifest must be a mapping with 'version' and 'jobs', not {kind(data)}",
            line=1,
            column=1,
        )
    return data, reporter


class _Loader:
    """One manifest document -> a Manifest, or every problem it has."""

    def __init__(self, path: Path, data: dict[str, Any], reporter: Reporter,
                 access: _Access, schema_dir: Path, limits: Limits) -> None:
        self.path = path
        self.allow_outside_output = access.output
        self.limits = limits
        self.data = data
        self.reporter = reporter
        self.schema_dir = schema_dir
        self.models = _models(path, data, reporter, schema_dir)
        defaults = data.get("defaults")
        self.defaults = Defaults(defaults if isinstance(defaults, dict) else {})
        self.files = FileChecker.for_manifest(path, access.files)
        self.builder = JobBuilder(self.models, self.defaults, self.files, reporter, limits)

    def load(self, output_dir: str | Path | None) -> Manifest:
        bad_entries = self.check_document()
        raw_jobs = self.data.get("jobs")
        entries = [(index, raw) for index, raw in enumerate(raw_jobs if isinstance(raw_jobs, list)
                                                            else [])
                   if index not in bad_entries and isinstance(raw, dict)]
        rows = {index: self.rows_of(index, raw) for index, raw in entries if "rows" in raw}
        entries = [(index, raw) for index, raw in entries if rows.get(index, []) is not None]
        specs: list[JobSpec] = []
        if self.within_job_limit(entries, rows):
            for index, raw in entries:
                for draft in expand_entry(index, raw, self.defaults, self.reporter,
                                          rows.get(index)):
                    spec = self.builder.build(draft)
                    if spec is not None:
                        specs.append(spec)
        self.defaults.check(self.models, self.reporter)
        self.check_prices()
        folder = self.output_dir(self.data.get("output_dir"), output_dir)
        if self.reporter:
            raise self.reporter.error()
        return Manifest(
            path=self.path,
            jobs=tuple(specs),
            settings=_settings(self.data.get("settings") or {}),
            output_dir=folder,
            lock_path=lock_path_for(self.path),
            default_output=output_dir is None and "output_dir" not in self.data,
        )

    def rows_of(self, index: int, raw: dict[str, Any]) -> list[Row] | None:
        """The rows of an entry's `rows:` file; None (reported) when it cannot be read."""
        value = raw["rows"]
        raw_id = raw.get("id")
        label = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
        shown = os.path.join(os.path.dirname(self.reporter.file), value)
        try:
            return read_rows(value, shown, self.files.root, self.files.allow_outside,
                             self.limits.rows_bytes)
        except InputFileError as exc:
            self.reporter.report(("jobs", index, "rows"), exc.message, job=label, field="rows",
                                 hint=exc.hint)
        except RowsProblem as exc:
            self.reporter.report(exc.at or ("jobs", index, "rows"), exc.message, job=label,
                                 field="rows", hint=exc.hint)
        return None

    def within_job_limit(self, entries: list[tuple[int, dict[str, Any]]],
                         rows: Mapping[int, list[Row] | None]) -> bool:
        """Whether the entries expand to at most the limit of jobs; reported if not, before
        anything is expanded (a few lines of matrix can describe millions of jobs)."""
        limit = self.limits.jobs
        sizes = {index: entry_size(raw, rows.get(index)) for index, raw in entries}
        total = sum(sizes.values())
        if total <= limit:
            return True
        hint = f"split it over several manifests, or raise the limit with {ENV_NAMES['jobs']}"
        index, size = max(sizes.items(), key=lambda item: item[1])
        if size > limit:  # one entry is the cause: point at its matrix
            raw_id = dict(entries)[index].get("id")
            self.reporter.report(("jobs", index, "matrix"), f"expands to {size:,} jobs; at most "
                                 f"{limit:,} per manifest", field="matrix", hint=hint,
                                 job=raw_id if isinstance(raw_id, str) else f"#{index + 1}")
        else:
            self.reporter.report(("jobs",), f"the entries expand to {total:,} jobs; at most "
                                 f"{limit:,} per manifest", field="jobs", hint=hint, at_key=True)
        return False

    def check_prices(self) -> None:
        """A price for a model octobatch does not know is a typo that leaves jobs unpriced."""
        settings = self.data.get("settings")
        prices = settings.get("prices") if isinstance(settings, dict) else None
        known = ", ".join(sorted(self.models))
        for name in prices if isinstance(prices, dict) else ():
            if name not in self.models:
                self.reporter.report(("settings", "prices", name),
                                     f"unknown model {show(name)}; known models: {known}",
                                     field=f"settings.prices.{name}", at_key=True,
                                     hint=did_you_mean(str(name), self.models))

    def check_document(self) -> set[int]:
        """Report shape problems; returns the indexes of entries too broken to expand."""
        bad_entries: set[int] = set()
        raw_jobs = self.data.get("jobs")
        for problem in problems(document_validator(self.schema_dir), self.data):
            path = problem.path
            job = None
            field = field_label(path) or None
            if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
                index = path[1]
                bad_entries.add(index)
                raw = raw_jobs[index] if isinstance(raw_jobs, list) else None
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                job = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
                field = field_label(path[2:]) or None
            self.reporter.report(path, problem.message, job=job, field=field, hint=problem.hint,
                                 at_key=problem.at_key)
        return bad_entries

    def output_dir(self, from_manifest: Any, override: str | Path | None) -> Path:
        if override is not None:  # the user's own choice on the command line
            return Path(os.path.abspath(override))
        if not isinstance(from_manifest, str):
            return default_output_dir(self.path)
        folder = Path(os.path.abspath(self.path.parent / from_manifest))
        reason = None if self.allow_outside_output else outside_reason(folder, self.path)
        if reason:
            self.reporter.report(("output_dir",), f"'{from_manifest}' is {reason}",
                                 field="output_dir",
                                 hint="pass --allow-outside-output to write there, or choose "
                                      "the folder with --output-dir")
        return folder


def _models(path: Path, data: dict[str, Any], reporter: Reporter, schema_dir: Path
            ) -> dict[str, Model]:
    """Shipped models plus the project's (settings.models_dir, OCTOBATCH_MODELS_PATH)."""
    settings = data.get("settings")
    folder = settings.get("models_dir") if isinstance(settings, dict) else None
    try:
        manifest_models(schema_dir, path, folder, environ={})
    except OctobatchError as exc:
        mark = reporter.smap.value(("settings", "models_dir"))
        raise reporter.fatal(f"settings.models_dir: {exc}", line=mark.line,
                             column=mark.column) from None
    try:
        return manifest_models(schema_dir, path, folder)
    except OctobatchError as exc:
        raise reporter.fatal(f"{MODELS_PATH_ENV}: {exc}") from None


def _settings(raw: Mapping[str, Any]) -> Settings:
    def number(name: str) -> float | None:
        value = raw.get(name)
        return None if value is None else float(value)

    concurrency = raw.get("concurrency")
    return Settings(
        concurrency=None if concurrency is None else int(concurrency),
        poll_interval=number("poll_interval"),
        timeout=number("timeout"),
        prices={model: Price.from_manifest(price)
                for model, price in (raw.get("prices") or {}).items()},
        currency=raw.get("currency"),
        max_cost=number("max_cost"),
    )
