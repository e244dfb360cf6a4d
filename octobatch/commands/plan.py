"""`octobatch plan MANIFEST`: what a run would do with each job and why, before any money is spent.

Reads the manifest, the lockfile (with the journal replayed) and the output files; changes
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from octobatch.manifest import Manifest, load_manifest
from octobatch.paths import absolute, shown
from octobatch.plan import Action, Plan, plan_manifest
from octobatch.state import load_state

# Groups in the order a reader cares about: what costs money first, what needs nothing last.
ORDER = (
    Action.SUBMIT,
    Action.REGENERATE,
    Action.RETRY,
    Action.UNCERTAIN,
    Action.POLL,
    Action.DOWNLOAD,
    Action.FAILED,
    Action.SKIP,
    Action.ORPHAN,
)
_COLOURS = {
    Action.SUBMIT: "32",  # green
    Action.REGENERATE: "33",  # yellow
    Action.RETRY: "33",
    Action.UNCERTAIN: "31",  # red
    Action.POLL: "36",  # cyan
    Action.DOWNLOAD: "36",
    Action.FAILED: "31",
    Action.SKIP: "2",  # dim
    Action.ORPHAN: "35",  # magenta
}


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(
        args.manifest, allow_outside_files=args.allow_outside_files, output_dir=args.output_dir
    )
    plan = plan_manifest(manifest, load_state(manifest.path), retry_failed=args.retry_failed)
    if args.json:  # compact: a plan can hold 10,000 steps, and jq pretty-prints on demand
        sys.stdout.write(json.dumps(to_json(manifest, plan), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(manifest, plan, colour=use_colour()))
    return 0


def use_colour() -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def to_json(manifest: Manifest, plan: Plan) -> dict[str, Any]:
    return {
        "manifest": absolute(manifest.path),
        "lockfile": absolute(manifest.lock_path),
        "output_dir": absolute(manifest.output_dir),
        "steps": [
            {
                "id": step.job_id,
                "action": step.action.value,
                "reason": step.reason,
                "model": step.job.model if step.job else (step.entry.model if step.entry else None),
                "seconds": step.job.seconds if step.job else None,
                "changed": list(step.changed),
            }
            for step in plan.steps
        ],
        "totals": {
            "jobs": len(plan.steps),
            "actions": {a.value: n for a, n in plan.counts().items() if n},
            "seconds_by_model": plan.seconds_by_model(),
            "costly_jobs": plan.costly(),
        },
    }


def render(manifest: Manifest, plan: Plan, *, colour: bool = False) -> str:
    paint: Callable[[str, str], str] = (
        (lambda code, text: f"\x1b[{code}m{text}\x1b[0m") if colour else (lambda _, text: text)
    )
    id_width = max((len(s.job_id) for s in plan.steps), default=0)
    model_width = max((len(_model(s)) for s in plan.steps), default=0)
    header = (f"plan for {shown(manifest.path)} (lockfile {manifest.lock_path.name}, "
              f"output {shown(manifest.output_dir)})")
    lines = [header, ""]
    counts = plan.counts()
    for action in ORDER:
        steps = [s for s in plan.steps if s.action is action]
        if not steps:
            continue
        lines.append(paint(_COLOURS[action], f"{action.value} ({len(steps)})"))
        for step in steps:
            seconds = f"{step.job.seconds}s" if step.job and step.job.seconds else "-"
            lines.append(
                f"  {step.job_id:<{id_width}}  {_model(step):<{model_width}}  "
                f"{seconds:>4}  {step.reason}"
            )
        lines.append("")
    per_action = ", ".join(f"{a.value} {counts[a]}" for a in ORDER if counts[a])
    lines.append(f"jobs: {len(plan.steps)}" + (f" ({per_action})" if per_action else ""))
    video = ", ".join(f"{model} {s}s" for model, s in sorted(plan.seconds_by_model().items()))
    lines.append(f"video to generate: {video or 'none'}")
    costly = plan.costly()
    lines.append(paint("1", f"jobs that will cost money: {costly}") if costly
                 else "jobs that will cost money: 0")
    return "\n".join(lines) + "\n"


def _model(step: Any) -> str:
    if step.job is not None:
        return str(step.job.model)
    return str(step.entry.model) if step.entry is not None else ""

