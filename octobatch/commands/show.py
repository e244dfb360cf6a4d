"""`octobatch show MANIFEST JOB`: everything recorded about one job, and the request it sends.

No network: the lockfile (journal replayed), the file on disk, the plan's verdict, the job's
price, and the exact `POST /v1/videos` a submission would send, built the way the engine
builds it. The key is never shown (`Bearer ***`); data: URIs are shortened to their head and
length, since a reference image inlined is megabytes of base64.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from octobatch.costs import amount
from octobatch.errors import EXIT_OK, OctobatchError, UsageError
from octobatch.jobs import ApiRequest, JobSpec
from octobatch.manifest import Manifest, load_manifest
from octobatch.paths import absolute, from_lockfile, shown
from octobatch.plan import plan_manifest
from octobatch.schemas import did_you_mean
from octobatch.state import LockEntry, load_state

DATA_URI_HEAD = 40  # characters of a data: URI kept: the media type and a little base64


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, allow_outside_files=args.allow_outside_files,
                             allow_outside_output=args.allow_outside_output)
    details = collect(manifest, args.job, base_url=args.base_url)
    if args.json:
        json.dump(details, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(details))
    return EXIT_OK


def collect(manifest: Manifest, job_id: str, *, base_url: str | None = None) -> dict[str, Any]:
    state = load_state(manifest.path)
    jobs = {job.id: job for job in manifest.jobs}
    job, entry = jobs.get(job_id), state.jobs.get(job_id)
    if job is None and entry is None:
        hint = did_you_mean(job_id, [*jobs, *state.jobs])
        raise UsageError(f"{manifest.path}: no job '{job_id}' in the manifest or its lockfile"
                         + (f" ({hint})" if hint else " (octobatch status lists the jobs)"))
    (step,) = [s for s in plan_manifest(manifest, state).steps if s.job_id == job_id]
    output = from_lockfile(manifest.lock_path, entry.output if entry else None)
    price = manifest.settings.prices.get(job.model if job else entry.model if entry else "")
    cost = price.of(job.seconds) if price is not None and job is not None else None
    return {
        "id": job_id,
        "manifest": absolute(manifest.path),
        "model": job.model if job else entry.model if entry else None,
        "in_manifest": job is not None,
        "status": entry.status.value if entry else "new",
        "task_id": entry.task_id if entry else None,
        "output": str(output) if output else None,
        "file_present": bool(output and output.is_file()),
        "bytes": entry.bytes if entry else None,
        "sha256": entry.sha256 if entry else None,
        "attempts": entry.attempts if entry else 0,
        "error": entry.error if entry else None,
        "submitted_at": entry.submitted_at if entry else None,
        "completed_at": entry.completed_at if entry else None,
        "possible_duplicate": entry.possible_duplicate if entry else False,
        "takes": _takes(entry),
        "cost": cost,
        "currency": manifest.settings.currency or "",
        "spent": _spent(entry),
        "next_run": {"action": step.action.value, "reason": step.reason},
        "request": _request(job, entry, base_url) if job is not None else None,
    }


def _takes(entry: LockEntry | None) -> list[Any]:
    return [take.to_json() for take in entry.takes] if entry is not None else []


def _spent(entry: LockEntry | None) -> float | None:
    return float(entry.spent) if entry is not None else None


def _request(job: JobSpec, entry: LockEntry | None, base_url: str | None) -> dict[str, Any]:
    from octobatch.models import build_request
    from octobatch.providers.octopusx import DEFAULT_BASE_URL

    url = (base_url or os.environ.get("OCTOBATCH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    try:
        request = build_request(job)
    except OctobatchError as exc:  # a local file gone or changed since it was checked
        return {"method": "POST", "url": f"{url}/v1/videos", "error": str(exc)}
    key = entry.idempotency_key if entry and entry.idempotency_key else None
    headers = {"Authorization": "Bearer ***",
               "Idempotency-Key": key or "(a new key for the first submission)"}
    return {"method": "POST", "url": f"{url}/v1/videos", "headers": headers,
            **_body(request)}


def _body(request: ApiRequest) -> dict[str, Any]:
    if request.transport == "json":
        return {"content_type": "application/json", "json": _shorten(request.json or {})}
    return {
        "content_type": "multipart/form-data",
        "form": dict(request.form),
        "files": [{"field": p.field, "filename": p.filename, "content_type": p.content_type,
                   "bytes": len(p.data)} for p in request.files],
    }


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("data:") and len(value) > DATA_URI_HEAD + 20:
        return f"{value[:DATA_URI_HEAD]}...({len(value):,} characters)"
    if isinstance(value, Mapping):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


def render(d: Mapping[str, Any]) -> str:
    def money(value: float) -> str:
        return amount(value, d["currency"])

    where = "" if d["in_manifest"] else " (not in the manifest: an orphan)"
    lines = [f"job '{d['id']}' of {shown(d['manifest'])}{where}"]
    file = "-"
    if d["output"]:
        file = shown(d["output"]) + (f" ({d['bytes']:,} bytes)" if d["bytes"] else "")
        if not d["file_present"]:
            file += " (missing)"
    error = d["error"] or {}
    rows = [
        ("model", d["model"] or "-"),
        ("status", d["status"] + (" (possible duplicate)" if d["possible_duplicate"] else "")),
        ("task id", d["task_id"] or "-"),
        ("file", file),
        ("sha256", d["sha256"] or "-"),
        ("attempts", str(d["attempts"])),
        ("submitted", d["submitted_at"] or "-"),
        ("completed", d["completed_at"] or "-"),
        ("error", ": ".join(str(x) for x in (error.get("code"), error.get("message")) if x)
         or "-"),
        ("takes", ", ".join(f"{t.get('take')}: {t.get('output')}" for t in d["takes"]) or "-"),
        ("cost", "unpriced" if d["cost"] is None else f"{money(d['cost'])} per generation"),
    ]
    if d["spent"] is not None:
        rows.append(("spent", money(d["spent"])))
    rows.append(("next run", f"{d['next_run']['action']}: {d['next_run']['reason']}"))
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    request = d["request"]
    if request is not None:
        lines += ["", f"request: {request['method']} {request['url']}"]
        if "error" in request:
            lines.append(f"  cannot be built now: {request['error']}")
        else:
            lines += [f"  {name}: {value}" for name, value in request["headers"].items()]
            lines.append(f"  Content-Type: {request['content_type']}")
            if "json" in request:
                body = json.dumps(request["json"], ensure_ascii=False, indent=2)
                lines += ["  " + line for line in body.splitlines()]
            else:
                lines += [f"  {name} = {value}" for name, value in request["form"].items()]
                lines += [f"  {f['field']} = file {f['filename']} ({f['content_type']}, "
                          f"{f['bytes']:,} bytes)" for f in request["files"]]
    return "\n".join(lines) + "\n"


