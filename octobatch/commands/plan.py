"""`octobatch plan MANIFEST`: what a run would do with each job and why, before any money is spent.

Reads the manifest, the lockfile (with the journal replayed) and the output files; changes
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from octobatch.costs import Estimate, amount, estimate, recorded_spend
from octobatch.errors import EXIT_OK
from octobatch.keycheck import KeyQuota, check_key
from octobatch.manifest import Manifest, load_manifest
from octobatch.paths import absolute, shown
from octobatch.plan import Action, Plan, Step, plan_manifest
from octobatch.selection import check_globs, only
from octobatch.state import LockState, load_state

# Groups in the order a reader cares about: what costs money first, what needs nothing last.
ORDER = (
    Action.SUBMIT,
    Action.REGENERATE,
    Action.RETRY,
    Action.UNCERTAIN,
    Action.POLL,
    Action.DOWNLOAD,
    Action.BLOCKED,
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
    Action.BLOCKED: "31",
    Action.FAILED: "31",
    Action.SKIP: "2",  # dim
    Action.ORPHAN: "35",  # magenta
}


# `--exit-code`: the plan would submit something (0: nothing to submit; 1 error; 2 invalid).
EXIT_WORK = 3


def main(args: argparse.Namespace) -> int:
    manifest = load_manifest(
        args.manifest, allow_outside_files=args.allow_outside_files, output_dir=args.output_dir,
        allow_outside_output=args.allow_outside_output,
    )
    check_globs(args.only, [job.id for job in manifest.jobs], str(manifest.path))
    check_globs(args.replace, [job.id for job in manifest.jobs], str(manifest.path),
                flag="--replace")
    state = load_state(manifest.path)
    plan = only(plan_manifest(manifest, state, retry_failed=args.retry_failed,
                              replace=args.replace or (), replace_rejected=args.replace_rejected),
                args.only)
    cost = manifest_estimate(manifest, plan, state)
    key = _check_key(args) if args.check_key else None
    if args.json:  # compact: a plan can hold 10,000 steps, and jq pretty-prints on demand
        document = to_json(manifest, plan, cost)
        if key is not None:
            document["key"] = key.to_json() if isinstance(key, KeyQuota) else {
                "ok": False, "error": key}
        sys.stdout.write(json.dumps(document, ensure_ascii=False, allow_nan=False) + "\n")
    else:
        sys.stdout.write(render(manifest, plan, cost, colour=use_colour()))
        if key is not None:
            sys.stdout.write((key.describe(cost.currency) if isinstance(key, KeyQuota) else key)
                             + "\n")
    return EXIT_WORK if args.exit_code and plan.costly() else EXIT_OK


def manifest_estimate(manifest: Manifest, plan: Plan, state: LockState) -> Estimate:
    settings = manifest.settings
    return estimate(plan, settings.prices, settings.currency, recorded_spend(state))


def _check_key(args: argparse.Namespace) -> KeyQuota | str:
    from octobatch.api import resolve_api_key
    from octobatch.providers.octopusx import DEFAULT_BASE_URL

    key = resolve_api_key(None, base_url=args.base_url, simulate=False)
    base_url = args.base_url or os.environ.get("OCTOBATCH_BASE_URL") or DEFAULT_BASE_URL
    return asyncio.run(check_key(base_url, key))


def use_colour() -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def to_json(manifest: Manifest, plan: Plan, cost: Estimate | None = None) -> dict[str, Any]:
    cost = cost or estimate(plan, {}, None)
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
                "takes": step.takes,
                "cost": cost.per_step.get(step.job_id),
            }
            for step in plan.steps
        ],
        "totals": {
            "jobs": len(plan.steps),
            "actions": {a.value: n for a, n in plan.counts().items() if n},
            "seconds_by_model": plan.seconds_by_model(),
            "costly_jobs": plan.costly(),
            "takes": plan.submissions(),
        },
        "cost": cost.to_json(),
    }


def render(manifest: Manifest, plan: Plan, cost: Estimate | None = None, *,
           colour: bool = False) -> str:
    cost = cost or estimate(plan, {}, None)
    paint: Callable[[str, str], str] = (
        (lambda code, text: f"\x1b[{code}m{text}\x1b[0m") if colour else (lambda _, text: text)
    )
    id_width = max((len(s.job_id) for s in plan.steps), default=0)
    model_width = max((len(_model(s)) for s in plan.steps), default=0)
    header = (f"plan for {shown(manifest.path)} (lockfile {manifest.lock_path.name}, "
              f"output {shown(manifest.output_dir)})")
    lines = [header, ""]
    counts = plan.counts()
    # A cost column only once the manifest has prices: before that it would say "unpriced"
    # on every line, which the totals say once.
    cost_width = max((len(_step_cost(s, cost)) for s in plan.steps), default=0) \
        if cost.priced else 0
    for action in ORDER:
        steps = [s for s in plan.steps if s.action is action]
        if not steps:
            continue
        lines.append(paint(_COLOURS[action], f"{action.value} ({len(steps)})"))
        for step in steps:
            seconds = f"{step.job.seconds}s" if step.job and step.job.seconds else "-"
            price = f"  {_step_cost(step, cost):>{cost_width}}" if cost_width else ""
            lines.append(
                f"  {step.job_id:<{id_width}}  {_model(step):<{model_width}}  "
                f"{seconds:>4}{price}  {step.reason}"
            )
        lines.append("")
    per_action = ", ".join(f"{a.value} {counts[a]}" for a in ORDER if counts[a])
    lines.append(f"jobs: {len(plan.steps)}" + (f" ({per_action})" if per_action else ""))
    video = ", ".join(f"{model} {s}s" for model, s in sorted(plan.seconds_by_model().items()))
    lines.append(f"video to generate: {video or 'none'}")
    costly, takes = plan.costly(), plan.submissions()
    paid = f"jobs that will cost money: {costly}" + (f" ({takes} takes)" if takes != costly
                                                       else "")
    lines.append(paint("1", paid) if costly else paid)
    lines += cost_lines(cost, paint)
    return "\n".join(lines) + "\n"


def cost_lines(cost: Estimate, paint: Callable[[str, str], str] = lambda _, t: t) -> list[str]:
    """`cost: ...` per model, then the total and what is already spent."""
    money = functools.partial(amount, currency=cost.currency)
    parts = []
    for model, line in sorted(cost.by_model.items()):
        jobs = f"{line.jobs} job{'s' if line.jobs != 1 else ''}"
        if line.cost is None:
            priced = line.jobs - line.unpriced_jobs
            what = "unpriced" if not priced else f"{line.unpriced_jobs} unpriced"
            parts.append(f"{model} {jobs} {what}")
        else:
            parts.append(f"{model} {jobs} {money(line.cost)}")
    spent = f"already spent: {money(cost.spent)}"
    if not cost.by_model:
        return [f"total cost: {money(0.0)} (nothing to submit); {spent}"]
    if not cost.priced:
        n = cost.unpriced_jobs
        return [paint("1", f"total cost: unpriced ({n} job{'s' if n != 1 else ''}; add "
                      "settings.prices, see docs/manifest.md)") + f"; {spent}"]
    lines = [f"cost by model: {', '.join(parts)}"]
    total = f"total cost: {money(cost.total)}"
    if cost.unpriced_jobs:
        n = cost.unpriced_jobs
        total += (f" + {n} unpriced job{'s' if n != 1 else ''} (give "
                  f"{'their models' if n != 1 else 'its model'} a price in settings.prices)")
    total += f"; {spent}"
    lines.append(paint("1", total) if cost.total or cost.unpriced_jobs else total)
    return lines


def _step_cost(step: Step, cost: Estimate) -> str:
    if not step.takes:
        return ""
    value = cost.per_step.get(step.job_id)
    return "unpriced" if value is None else amount(value, cost.currency)


def _model(step: Any) -> str:
    if step.job is not None:
        return str(step.job.model)
    return str(step.entry.model) if step.entry is not None else ""

