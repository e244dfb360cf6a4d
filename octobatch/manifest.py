"""Manifest file -> validated, expanded job specs: the one call that reads a manifest.

Steps: read the YAML with positions, check the document's shape (manifest.schema.json), merge
defaults under each job, expand its matrix, fill `{variables}` into id and prompt, validate the
result against the model's schema, check local files, hash the canonical request, derive ids,
and reject duplicate ids. Every problem in the file is collected; the caller gets either a
complete Manifest or one ManifestError carrying all of them.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from octobatch.errors import Diagnostic, ManifestError
from octobatch.jobs import JobSpec, LocalFile, Position
from octobatch.localfiles import FileChecker, FileProblem, check_data_uri, ref_form
from octobatch.lockfile import lock_path_for
from octobatch.models import Model, load_models
from octobatch.schemas import (
    Problem,
    default_schema_dir,
    did_you_mean,
    document_validator,
    field_label,
    kind,
    problems,
    show,
)
from octobatch.yamlpos import DocPath, SourceMap, YamlError, parse

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ID_RULE = "ids start with a letter or digit and contain only letters, digits, '.', '_' and '-'"
# `{name}` is a matrix variable; `{{` and `}}` are literal braces.
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")
_NUMERIC_TEXT = re.compile(r"\s*[0-9]{1,9}\s*")  # as the schemas' pattern; no huge ints
MAX_MATRIX_JOBS = 100_000
_JOB_KEYS = ("id", "matrix")  # keys of a job that are not API fields


@dataclass(frozen=True)
class Settings:
    """Run settings from the manifest; command-line flags override them."""

    concurrency: int | None = None
    poll_interval: float | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path  # as given by the user (used in messages)
    jobs: tuple[JobSpec, ...]  # in manifest order
    settings: Settings
    output_dir: Path  # absolute
    lock_path: Path


def load_manifest(
    path: str | Path,
    *,
    allow_outside_files: bool = False,
    output_dir: str | Path | None = None,
    schema_dir: Path | None = None,
) -> Manifest:
    """Read, expand and validate one manifest; raises ManifestError with all its problems.

    `output_dir` (from the command line, relative to the current directory) overrides the
    manifest's own, which is relative to the manifest file; the default is
    `<cwd>/output/<manifest stem>`. `schema_dir` replaces the shipped schemas (tests, new models).
    """
    with _collector_paused():
        # The loader (and the YAML node tree it keeps for positions) is freed here, before
        # the collector is back, so it never walks those nodes.
        return _Loader(Path(path), allow_outside_files, schema_dir or default_schema_dir()).load(
            output_dir
        )


def load_manifests(
    paths: Iterable[str | Path],
    *,
    allow_outside_files: bool = False,
    schema_dir: Path | None = None,
) -> list[Manifest]:
    """Load several manifests; one ManifestError carries the problems of every file."""
    manifests: list[Manifest] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        try:
            manifests.append(
                load_manifest(path, allow_outside_files=allow_outside_files, schema_dir=schema_dir)
            )
        except ManifestError as exc:
            diagnostics.extend(exc.diagnostics)
    if diagnostics:
        raise ManifestError(diagnostics)
    return manifests


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


def canonical_hash(canonical: Mapping[str, Any]) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Variable:
    value: Any
    path: DocPath  # where the matrix value was written


class _Loader:
    def __init__(self, path: Path, allow_outside: bool, schema_dir: Path) -> None:
        self.path = path
        self.file = str(path)
        self.schema_dir = schema_dir
        self.models = load_models(schema_dir)
        self.files = FileChecker.for_manifest(path, allow_outside)
        self.smap = SourceMap()
        # One diagnostic per place and message: a bad default or matrix value is reported
        # once, not once per job it reaches.
        self.diagnostics: dict[tuple[Any, ...], Diagnostic] = {}
        self.defaults: dict[str, Any] = {}
        self.default_checks: dict[tuple[str, str], bool] = {}
        self.default_accepted: set[str] = set()
        self.default_rejections: dict[str, Problem] = {}
        self.ids: dict[str, DocPath] = {}  # job id -> the entry that first produced it

    # -- reporting -------------------------------------------------------------------------

    def report(
        self,
        where: DocPath,
        message: str,
        *,
        job: str | None = None,
        field: str | None = None,
        hint: str | None = None,
        at_key: bool = False,
    ) -> None:
        mark = self.smap.key(where) if at_key else self.smap.value(where)
        diagnostic = Diagnostic(self.file, mark.line, mark.column, message, job, field, hint)
        self.diagnostics.setdefault((mark.line, mark.column, field, message), diagnostic)

    def fatal(self, message: str, *, line: int = 0, column: int = 0, hint: str | None = None
              ) -> ManifestError:
        return ManifestError([Diagnostic(self.file, line, column, message, hint=hint)])

    # -- the document ----------------------------------------------------------------------

    def load(self, output_dir: str | Path | None) -> Manifest:
        data = self.parse()
        bad_jobs = self.check_document(data)
        defaults = data.get("defaults")
        if isinstance(defaults, dict):
            self.defaults = {k: v for k, v in defaults.items() if k not in _JOB_KEYS}
        raw_jobs = data.get("jobs")
        specs: list[JobSpec] = []
        if isinstance(raw_jobs, list):
            for index, raw in enumerate(raw_jobs):
                if index not in bad_jobs and isinstance(raw, dict):
                    specs.extend(self.expand(index, raw))
        self.check_defaults()
        if self.diagnostics:
            ordered = sorted(self.diagnostics.values(), key=lambda d: (d.line, d.column))
            raise ManifestError(ordered)
        return Manifest(
            path=self.path,
            jobs=tuple(specs),
            settings=self.settings(data.get("settings") or {}),
            output_dir=self.output_dir(data.get("output_dir"), output_dir),
            lock_path=lock_path_for(self.path),
        )

    def parse(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise self.fatal("no such file") from None
        except IsADirectoryError:
            raise self.fatal("is a directory; give the manifest's YAML file") from None
        except OSError as exc:
            raise self.fatal(f"cannot read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.fatal(
                f"not a UTF-8 text file (byte {exc.start + 1} is invalid)",
                hint="a manifest is a YAML file saved as UTF-8",
            ) from None
        try:
            data, self.smap = parse(text)
        except YamlError as exc:
            line, column = (exc.mark.line, exc.mark.column) if exc.mark else (0, 0)
            raise self.fatal(f"invalid YAML: {exc.message}", line=line, column=column) from None
        if data is None:
            raise self.fatal("the manifest is empty", hint="start with 'version: 1' and 'jobs:'")
        if not isinstance(data, dict):
            raise self.fatal(
                f"the manifest must be a mapping with 'version' and 'jobs', not {kind(data)}",
                line=1,
                column=1,
            )
        return data

    def check_document(self, data: dict[str, Any]) -> set[int]:
        """Report shape problems; returns the indexes of jobs too broken to expand."""
        bad_jobs: set[int] = set()
        raw_jobs = data.get("jobs")
        for problem in problems(document_validator(self.schema_dir), data):
            path = problem.path
            job = None
            field = field_label(path) or None
            if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
                index = path[1]
                bad_jobs.add(index)
                raw = raw_jobs[index] if isinstance(raw_jobs, list) else None
                raw_id = raw.get("id") if isinstance(raw, dict) else None
                job = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
                field = field_label(path[2:]) or None
            self.report(path, problem.message, job=job, field=field, hint=problem.hint,
                        at_key=problem.at_key)
        return bad_jobs

    def settings(self, raw: Mapping[str, Any]) -> Settings:
        def number(name: str) -> float | None:
            value = raw.get(name)
            return None if value is None else float(value)

        concurrency = raw.get("concurrency")
        return Settings(
            concurrency=None if concurrency is None else int(concurrency),
            poll_interval=number("poll_interval"),
            timeout=number("timeout"),
        )

    def output_dir(self, from_manifest: str | None, override: str | Path | None) -> Path:
        if override is not None:
            return Path(os.path.abspath(override))
        if from_manifest is not None:
            return Path(os.path.abspath(self.path.parent / from_manifest))
        return Path(os.path.abspath(Path("output") / self.path.stem))

    # -- one job ---------------------------------------------------------------------------

    def expand(self, index: int, raw: dict[str, Any]) -> list[JobSpec]:
        """The jobs of one manifest entry: one, or one per matrix combination."""
        where: DocPath = ("jobs", index)
        raw_id = raw.get("id")
        label = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
        own = {k: v for k, v in raw.items() if k not in _JOB_KEYS}
        origins: dict[str, DocPath] = {k: ("defaults", k) for k in self.defaults}
        origins.update({k: (*where, k) for k in own})
        base = {**self.defaults, **own}
        matrix: dict[str, list[Any]] = raw.get("matrix") or {}

        clashes = [key for key in matrix if key in own or key in _JOB_KEYS]
        for key in clashes:
            message = (f"'{key}' cannot be a matrix key" if key in _JOB_KEYS
                       else f"'{key}' is set both on the job and in its matrix")
            self.report((*where, "matrix", key), message, job=label, field=f"matrix.{key}",
                        hint=None if key in _JOB_KEYS else "keep one of them", at_key=True)
        count = math.prod(len(values) for values in matrix.values())
        if count > MAX_MATRIX_JOBS:
            self.report((*where, "matrix"), f"expands to {count:,} jobs; at most "
                        f"{MAX_MATRIX_JOBS:,} per entry", job=label, field="matrix")
        if clashes or count > MAX_MATRIX_JOBS:
            return []

        axes = [
            [(key, _Variable(value, (*where, "matrix", key, i))) for i, value in enumerate(values)]
            for key, values in matrix.items()
        ]
        specs = []
        for combination in itertools.product(*axes):
            spec = self.build(where, label, raw_id, base, origins, dict(combination))
            if spec is not None:
                specs.append(spec)
        return specs

    def build(
        self,
        where: DocPath,
        label: str,
        raw_id: Any,
        base: dict[str, Any],
        origins: dict[str, DocPath],
        variables: dict[str, _Variable],
    ) -> JobSpec | None:
        """One job from its merged fields and one matrix combination; None if it is invalid."""
        fields = dict(base)
        origins = dict(origins)
        model = self.model_of(where, label, fields, origins, variables)
        if model is None:
            return None
        for key, origin in list(origins.items()):
            if origin[0] == "defaults" and key in fields and not self.default_fits(model, key):
                del fields[key], origins[key]
        for key, variable in variables.items():
            if key in model.fields:  # an API field: set on the job; other keys are variables
                fields[key] = variable.value
                origins[key] = variable.path

        job_id = self.fill_templates(where, label, raw_id, model, fields, origins, variables)
        if job_id is False or not self.valid_fields(where, job_id or label, model, fields,
                                                    origins):
            return None
        label = job_id or label
        for name, default in model.defaults.items():
            fields.setdefault(name, default)
        for name in model.numeric_fields:
            if name in fields:
                fields[name] = str(fields[name])
        files = self.local_files(model, fields, origins, label)
        if files is None:
            return None

        canonical = _canonical(model.name, fields, files)
        spec_hash = canonical_hash(canonical)
        if job_id is None:
            job_id = f"{model.name}-{spec_hash[:10]}"
            if not self.claim_id(job_id, where, derived=True):
                return None
        mark = self.smap.value(where)
        return JobSpec(
            id=job_id,
            model=model.name,
            fields=fields,
            files=files,
            spec_hash=spec_hash,
            source=Position(self.file, mark.line, mark.column),
            canonical=canonical,
        )

    def fill_templates(
        self,
        where: DocPath,
        label: str,
        raw_id: Any,
        model: Model,
        fields: dict[str, Any],
        origins: dict[str, DocPath],
        variables: dict[str, _Variable],
    ) -> str | None | Literal[False]:
        """Fill id and prompt from the matrix; the job's id (None: derive it), False if invalid."""
        used: set[str] = set()
        job_id = None
        ok = True
        if isinstance(raw_id, str):
            job_id = self.render(raw_id, (*where, "id"), "id", label, variables, used,
                                 clean=_id_safe)
            if job_id is None:
                ok = False
            elif not ID_PATTERN.fullmatch(job_id):
                self.report((*where, "id"), f"invalid id {show(job_id)}", job=job_id,
                            field="id", hint=ID_RULE)
                ok = False
            else:
                label = job_id
                ok = self.claim_id(job_id, where, derived=False)
        if isinstance(fields.get("prompt"), str):
            prompt = self.render(fields["prompt"], origins["prompt"], "prompt", label, variables,
                                 used)
            ok = ok and prompt is not None
            fields["prompt"] = prompt
        for key, variable in variables.items():
            if key not in model.fields and key != "model" and key not in used:
                self.report(
                    variable.path[:-1],
                    f"'{key}' is neither a field of {model.name} nor used as {{{key}}} "
                    "in id or prompt",
                    job=label, field=f"matrix.{key}", at_key=True,
                    hint=did_you_mean(key, model.fields),
                )
                ok = False
        return job_id if ok else False

    def valid_fields(
        self,
        where: DocPath,
        label: str,
        model: Model,
        fields: dict[str, Any],
        origins: dict[str, DocPath],
    ) -> bool:
        """Check the job's fields against its model's schema, reporting every problem."""
        for name in model.numeric_fields:
            if name in fields:
                fields[name] = _as_number(fields[name])
        found = problems(model.validator, {"model": model.name, **fields})
        for problem in found:
            head = problem.path[0] if problem.path else None
            source = origins.get(head) if isinstance(head, str) else None
            hint = problem.hint
            if source is None and head is not None and hint is None:
                hint = "set it on the job or in defaults"
            self.report(
                (*source, *problem.path[1:]) if source else where,
                problem.message,
                job=label,
                field=field_label(problem.path) or None,
                hint=hint,
                at_key=problem.at_key,
            )
        return not found

    def default_fits(self, model: Model, key: str) -> bool:
        """Whether a default applies to a job of `model`.

        Defaults are shared by jobs of different models: a default the model has no such
        field for, or whose value the model does not accept (`seconds: 8` reaching a jimeng
        job), is left out and the model's own default applies. A default no job accepts is
        reported at the end.
        """
        cached = self.default_checks.get((model.name, key))
        if cached is not None:
            return cached
        fits = key in model.fields
        if fits:
            value = self.defaults[key]
            if key in model.numeric_fields:
                value = _as_number(value)
            instance = {"model": model.name, "prompt": "-", key: value}
            rejected = [p for p in problems(model.validator, instance) if p.path[:1] == (key,)]
            fits = not rejected
            if rejected:
                self.default_rejections.setdefault(key, rejected[0])
        if fits:
            self.default_accepted.add(key)
        self.default_checks[(model.name, key)] = fits
        return fits

    def check_defaults(self) -> None:
        """Report defaults that are no model's field, and defaults no job could take."""
        every_field = {"model", *(f for m in self.models.values() for f in m.fields)}
        for key in self.defaults:
            if key not in every_field:
                self.report(("defaults", key), "unknown field", field=f"defaults.{key}",
                            hint=did_you_mean(key, every_field), at_key=True)
            elif key in self.default_rejections and key not in self.default_accepted:
                problem = self.default_rejections[key]
                self.report(("defaults", *problem.path), problem.message,
                            field=f"defaults.{field_label(problem.path)}",
                            hint="no job's model accepts this default")

    def model_of(
        self,
        where: DocPath,
        label: str,
        fields: dict[str, Any],
        origins: dict[str, DocPath],
        variables: dict[str, _Variable],
    ) -> Model | None:
        """The job's model (from its matrix, the job, or defaults); removes it from `fields`."""
        if "model" in variables:
            fields["model"] = variables["model"].value
            origins["model"] = variables["model"].path
        name = fields.pop("model", None)
        known = ", ".join(sorted(self.models))
        if name is None:
            self.report(where, "missing required field", job=label, field="model",
                        hint=f"set it on the job or in defaults; known models: {known}")
            return None
        model = self.models.get(name) if isinstance(name, str) else None
        if model is None:
            self.report(origins["model"], f"unknown model {show(name)}; known models: {known}",
                        job=label, field="model",
                        hint=did_you_mean(name, self.models) if isinstance(name, str) else None)
        return model

    def render(
        self,
        template: str,
        where: DocPath,
        field: str,
        label: str,
        variables: dict[str, _Variable],
        used: set[str],
        clean: Callable[[str], str] = str,
    ) -> str | None:
        """Fill `{name}` from the matrix; reports unknown names and non-text values.

        `clean` adapts each value to where it goes (ids cannot hold the ':' of "16:9").
        """
        if "{" not in template and "}" not in template:
            return template
        ok = True

        def substitute(match: re.Match[str]) -> str:
            nonlocal ok
            token, name = match.group(0), match.group(1)
            if name is None:
                return token[0]  # `{{` or `}}`
            variable = variables.get(name)
            if variable is None:
                ok = False
                hint = did_you_mean(name, variables) or (
                    f"the matrix defines {', '.join(variables)}" if variables
                    else "this job has no matrix"
                )
                self.report(where, f"unknown template variable {{{name}}}", job=label,
                            field=field, hint=f"{hint}; write {{{{ and }}}} for literal braces")
                return token
            used.add(name)
            value = variable.value
            if isinstance(value, bool):
                return clean("true" if value else "false")
            if isinstance(value, (str, int, float)):
                return clean(str(value))
            ok = False
            self.report(variable.path, f"{{{name}}} needs text or a number, not {kind(value)}",
                        job=label, field=field)
            return token

        text = _TEMPLATE.sub(substitute, template)
        return text if ok else None

    def local_files(
        self, model: Model, fields: dict[str, Any], origins: dict[str, DocPath], label: str
    ) -> tuple[LocalFile, ...] | None:
        """Check every file reference of the job; None when one of them is unusable."""
        files: list[LocalFile] = []
        ok = True
        for name, declared in model.file_fields.items():
            value = fields.get(name)
            if value is None:
                continue
            items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                ref_label = name if i is None else f"{name}[{i}]"
                where = origins[name] if i is None else (*origins[name], i)
                max_bytes = model.max_video_bytes if declared.kind == "video" else None
                try:
                    form = ref_form(item)
                    if declared.local_only and form != "local":
                        raise FileProblem(
                            f"must be a local {declared.kind} file: {model.name} uploads it",
                            "download it and give its path relative to the manifest",
                        )
                    if form == "data":
                        check_data_uri(item, declared.kind, max_bytes)
                    elif form == "local":
                        files.append(self.files.check(item, ref_label, declared.kind, max_bytes))
                except FileProblem as problem:
                    self.report(where, problem.message, job=label, field=ref_label,
                                hint=problem.hint)
                    ok = False
        return tuple(files) if ok else None

    def claim_id(self, job_id: str, where: DocPath, *, derived: bool) -> bool:
        """Record that the entry at `where` produced `job_id`; False (reported) if taken."""
        first = self.ids.get(job_id)
        if first is None:
            self.ids[job_id] = where
            return True
        if first == where:  # two combinations of one matrix
            message = (f"the matrix makes identical jobs ('{job_id}')" if derived
                       else f"the matrix gives several jobs the id '{job_id}'")
            hint = "use every matrix variable in the id or the prompt"
        else:
            other = self.smap.value(first)
            there = f"{self.file}:{other.line}:{other.column}"
            message = (f"same content as the job at {there}, so both get the id '{job_id}'"
                       if derived else f"duplicate id '{job_id}', also used at {there}")
            hint = ("give each an id to generate it more than once" if derived
                    else "ids must be unique; rename one of the jobs")
        self.report((*where, "id"), message, job=job_id, field="id", hint=hint)
        return False


def _id_safe(text: str) -> str:
    """A matrix value as part of an id: `16:9` -> `16-9`."""
    return _NOT_IN_ID.sub("-", text)


def _as_number(value: Any) -> Any:
    """A number or numeric string as an int, for range checks; anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        return int(value)
    return value


def _canonical(model: str, fields: Mapping[str, Any], files: Iterable[LocalFile]
               ) -> dict[str, Any]:
    """What identifies the video: the request with each local file replaced by its hash."""
    by_label = {f.field: f"sha256:{f.sha256}" for f in files}
    canonical: dict[str, Any] = {"model": model}
    for key, value in fields.items():
        if isinstance(value, list):
            canonical[key] = [by_label.get(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            canonical[key] = by_label.get(key, value)
    return canonical
