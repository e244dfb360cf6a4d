"""What a run would cost: the user's prices applied to the jobs a plan would submit.

The provider publishes no prices, so they come from the manifest (`settings.prices`, model ->
`{per_second, per_job}`, both added up) under a label (`settings.currency`). A model without a
price is *unpriced*: its jobs are counted apart and never shown as costing nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from octobatch.plan import Plan, Step
    from octobatch.state import LockState


@dataclass(frozen=True)
class Price:
    per_second: float | None = None
    per_job: float | None = None

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any]) -> Price:
        def number(name: str) -> float | None:
            value = raw.get(name)
            return None if value is None else float(value)

        return cls(per_second=number("per_second"), per_job=number("per_job"))

    def of(self, seconds: int | None) -> float | None:
        """One job's cost; None when it is priced per second and its length is unknown."""
        if self.per_second is not None and seconds is None:
            return None
        return (self.per_second or 0.0) * (seconds or 0) + (self.per_job or 0.0)


@dataclass
class ModelCost:
    jobs: int = 0
    seconds: int = 0
    cost: float | None = 0.0  # None: unpriced (some of its jobs have no price)
    unpriced_jobs: int = 0


@dataclass(frozen=True)
class Estimate:
    """The cost of the steps a run would submit, by step and by model, and what is spent."""

    per_step: Mapping[str, float | None]  # job id -> cost of this run's step (0: submits nothing)
    by_model: Mapping[str, ModelCost]  # only models with something to submit
    total: float  # of the priced jobs
    unpriced_jobs: int
    spent: float
    currency: str  # "" when the manifest names none
    priced: bool = field(default=False)  # the manifest has any price at all

    def to_json(self) -> dict[str, Any]:
        return {"total": _round(self.total), "currency": self.currency,
                "unpriced_jobs": self.unpriced_jobs, "spent": _round(self.spent)}


def estimate(plan: Plan, prices: Mapping[str, Price], currency: str | None,
             spent: float = 0.0) -> Estimate:
    per_step: dict[str, float | None] = {}
    by_model: dict[str, ModelCost] = {}
    total, unpriced = 0.0, 0
    for step in plan.steps:
        model = _model(step)
        price = prices.get(model)
        if not step.takes or step.job is None:
            per_step[step.job_id] = 0.0 if price is not None else None
            continue
        one = price.of(step.job.seconds) if price is not None else None
        cost = None if one is None else one * step.takes  # every take is a paid generation
        per_step[step.job_id] = cost
        line = by_model.setdefault(model, ModelCost())
        line.jobs += 1
        line.seconds += (step.job.seconds or 0) * step.takes
        if cost is None:
            unpriced += 1
            line.unpriced_jobs += 1
            line.cost = None
        else:
            total += cost
            if line.cost is not None:
                line.cost += cost
    return Estimate(per_step, by_model, total, unpriced, spent, currency or "", bool(prices))


def recorded_spend(state: LockState) -> float:
    """What the lockfile says this manifest has spent so far: every submission it counted."""
    return float(state.spent)


def amount(value: float, currency: str) -> str:
    """`2.40 USD`: two decimals, more only when a small price needs them."""
    text = f"{value:,.2f}"
    if abs(float(text.replace(",", "")) - value) > 1e-9:
        text = f"{value:,.6f}".rstrip("0")
    return f"{text} {currency}" if currency else text


def _round(value: float) -> float:
    return round(value, 9)  # no float noise such as 0.30000000000000004 in JSON


def _model(step: Step) -> str:
    if step.job is not None:
        return str(step.job.model)
    return str(step.entry.model) if step.entry is not None else ""
