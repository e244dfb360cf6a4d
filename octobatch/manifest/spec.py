"""A draft -> a JobSpec: its model, templates, fields checked against the model, local files
checked and hashed, the canonical request and its hash, and the job's id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from octobatch.inputs import InputFileError
from octobatch.jobs import JobSpec, LocalFile, Position
from octobatch.manifest.causes import allowed_fields, one_per_cause
from octobatch.manifest.expand import Defaults, Draft, as_number
from octobatch.manifest.files import FileChecker, ref_form
from octobatch.manifest.ids import IdRegister, id_problem, id_safe
from octobatch.manifest.limits import Limits
from octobatch.manifest.report import Reporter
from octobatch.manifest.templates import TemplateProblem, render
from octobatch.manifest.yamlpos import DocPath
from octobatch.models import Model
from octobatch.schemas import did_you_mean, field_label, problems, show


def canonical_hash(canonical: Mapping[str, Any]) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JobBuilder:
    """Turns the drafts of one manifest into job specs, reporting every problem on the way."""

    def __init__(self, models: Mapping[str, Model], defaults: Defaults, files: FileChecker,
                 reporter: Reporter, limits: Limits) -> None:
        self.models = models
        self.limits = limits
        self.defaults = defaults
        self.files = files
        self.reporter = reporter
        self.ids = IdRegister(reporter)

    def build(self, draft: Draft) -> JobSpec | None:
        """The job of `draft`, or None when it is invalid (its problems are reported)."""
        model = self.model_of(draft)
        if model is None:
            return None
        self.defaults.drop_unfit(model, draft)
        for key, variable in draft.variables.items():
            if key in model.fields:  # an API field: set on the job; other keys are variables
                draft.fields[key] = variable.value
                draft.origins[key] = variable.at

        job_id = self.fill_templates(draft, model)
        if job_id is False or not self.valid_fields(draft, model) or not self.short_prompt(draft):
            return None
        fields = draft.fields
        for name, default in model.defaults.items():
            fields.setdefault(name, default)
        for name in model.numeric_fields:
            if name in fields:
                fields[name] = str(fields[name])
        files = self.local_files(draft, model)
        if files is None:
            return None

        canonical = _canonical(model.name, fields, files)
        spec_hash = canonical_hash(canonical)
        if job_id is None:
            job_id = f"{model.name}-{spec_hash[:10]}"
            if not self.ids.claim(job_id, draft, derived=True):
                return None
        return JobSpec(
            id=job_id,
            model=model.name,
            fields=fields,
            files=files,
            spec_hash=spec_hash,
            source=draft.source or self.reporter.position(draft.where),
            canonical=canonical,
            takes=draft.takes,
            variables={k: v.value for k, v in draft.variables.items() if k != "id"},
            entry=".".join(map(str, draft.where)),
            seconds_field=model.seconds_field,
        )

    def model_of(self, draft: Draft) -> Model | None:
        """The job's model (from its matrix, the job, or defaults); removes it from the fields."""
        variable = draft.variables.get("model")
        if variable is not None:
            draft.fields["model"] = variable.value
            draft.origins["model"] = variable.at
        name = draft.fields.pop("model", None)
        known = ", ".join(sorted(self.models))
        if name is None:
            self.reporter.report(draft.where, "missing required field", job=draft.label,
                                 field="model",
                                 hint=f"set it on the job or in defaults; known models: {known}")
            return None
        model = self.models.get(name) if isinstance(name, str) else None
        if model is None:
            self.reporter.report(
                draft.origins["model"], f"unknown model {show(name)}; known models: {known}",
                job=draft.label, field="model",
                hint=did_you_mean(name, self.models) if isinstance(name, str) else None)
        return model

    def fill_templates(self, draft: Draft, model: Model) -> str | None | Literal[False]:
        """Fill id and prompt from the variables; the job's id (None: derive it from the
        content), False if invalid. Once the id is known, messages name the job by it."""
        used: set[str] = set()
        job_id = None
        ok = True
        if isinstance(draft.raw_id, str):
            where = draft.id_at or (*draft.where, "id")
            job_id, found = render(draft.raw_id, draft.variables, used, clean=id_safe,
                                   defined_by="the matrix" if draft.rows is None else "the rows")
            self.template_problems(found, where, "id", draft.label)
            invalid = None if found else id_problem(job_id)
            if invalid:
                self.reporter.report(where, invalid[0], job=job_id, field="id", hint=invalid[1])
            if found or invalid:
                ok = False
            else:
                draft.label = job_id
                ok = self.ids.claim(job_id, draft, derived=False)
        prompt = draft.fields.get("prompt")
        if isinstance(prompt, str):
            draft.fields["prompt"], found = render(
                prompt, draft.variables, used,
                defined_by="the matrix" if draft.rows is None else "the rows")
            self.template_problems(found, draft.origins["prompt"], "prompt", draft.label)
            ok = ok and not found
        for key, variable in draft.variables.items():
            if key in model.fields or key == "model" or key in used:
                continue
            hint = did_you_mean(key, allowed_fields(model))
            if variable.place is not None and hint is None:
                continue  # a spreadsheet's own column (notes, status): not for the request
            self.reporter.report(
                variable.key_at,
                f"'{key}' is neither a field of {model.name} nor used as {{{key}}} "
                "in id or prompt",
                job=draft.label, field=f"matrix.{key}" if variable.place is None else key,
                at_key=True, hint=hint,
            )
            ok = False
        return job_id if ok else False

    def template_problems(self, found: Iterable[TemplateProblem], where: DocPath | Position,
                          field: str,
                          label: str) -> None:
        for problem in found:
            at = problem.variable.at if problem.variable else where
            self.reporter.report(at, problem.message, job=label, field=field, hint=problem.hint)

    def valid_fields(self, draft: Draft, model: Model) -> bool:
        """Check the job's fields against its model's schema, reporting every problem."""
        fields = draft.fields
        for name in model.numeric_fields:
            if name in fields:
                fields[name] = as_number(fields[name])
        found = problems(model.validator, {"model": model.name, **fields})
        if not found:
            return True
        for problem in one_per_cause(found, model, fields, self.defaults.misspelt(self.models)):
            head = problem.path[0] if problem.path else None
            source = draft.origins.get(head) if isinstance(head, str) else None
            hint = problem.hint
            if source is None and head is not None and hint is None:
                hint = "set it on the job or in defaults"
            self.reporter.report(
                _inside(source, problem.path[1:]) if source else draft.where,
                problem.message,
                job=draft.label,
                field=field_label(problem.path) or None,
                hint=hint,
                at_key=problem.at_key,
            )
        return not found

    def short_prompt(self, draft: Draft) -> bool:
        """Whether the filled prompt is within the limit (reported when it is not)."""
        prompt = draft.fields.get("prompt")
        limit = self.limits.prompt_chars
        if not isinstance(prompt, str) or len(prompt) <= limit:
            return True
        self.reporter.report(draft.origins["prompt"], f"is {len(prompt):,} characters long; "
                             f"at most {limit:,} allowed", job=draft.label, field="prompt",
                             hint="shorten it, or raise the limit with OCTOBATCH_MAX_PROMPT_CHARS")
        return False

    def local_files(self, draft: Draft, model: Model) -> tuple[LocalFile, ...] | None:
        """Check every file reference of the job; None when one of them is unusable."""
        files: list[LocalFile] = []
        ok = True
        for name, declared in model.file_fields.items():
            value = draft.fields.get(name)
            if value is None:
                continue
            items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                ref_label = name if i is None else f"{name}[{i}]"
                where = draft.origins[name] if i is None else _inside(draft.origins[name], (i,))
                max_bytes = (model.max_video_bytes if declared.kind == "video"
                             else self.limits.image_bytes)
                try:
                    form = ref_form(item)
                    if declared.local_only and form != "local":
                        raise InputFileError(
                            f"must be a local {declared.kind} file: {model.name} uploads it",
                            "download it and give its path relative to the manifest",
                        )
                    if form == "data":
                        self.files.check_data(item, declared.kind, max_bytes)
                    elif form == "local":
                        files.append(self.files.check(item, ref_label, declared.kind, max_bytes))
                except InputFileError as problem:
                    self.reporter.report(where, problem.message, job=draft.label,
                                         field=ref_label, hint=problem.hint)
                    ok = False
        return tuple(files) if ok else None


def _inside(where: DocPath | Position, path: tuple[Any, ...]) -> DocPath | Position:
    """The place of a part of a value: inside it in the manifest; the cell in a rows file."""
    return where if isinstance(where, Position) else (*where, *path)


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
