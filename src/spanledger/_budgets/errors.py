"""What the guard raises to stop a call before it is made.

::

    SpanledgerError
     └── BudgetError             do not make this call (catch this one to handle every refusal)
          ├── BudgetExceeded     a hard budget would be exceeded (subject, limit, spent, period)
          ├── BudgetUnavailable  the store could not be read and the guard fails closed
          └── RateLimited        too many requests or tokens in the last minute (retry_after)

A bad budget, period, time zone or webhook URL is a :class:`~spanledger.ConfigError` (a ``ValueError``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from .._errors import SpanledgerError


class BudgetError(SpanledgerError):
    """The guard refused a call: do not make it."""


class BudgetExceeded(BudgetError):
    """Making the call could take a subject past a hard budget.

    Attributes:
        subject: Who, as people read it (``user alice in tenant acme``).
        budget_id: The budget that refused.
        limit: The budget in USD.
        spent: What counts against it now: spend read from the store, calls priced in this process since,
            and the reservations of calls still running.
        estimate: What this call was expected to cost.
        period: ``daily``, ``weekly``, ``monthly``, ``yearly``, ``custom`` or ``lifetime``.
        period_start: The period's start (UTC).
        period_end: The period's end, exclusive (UTC).
    """

    def __init__(
        self,
        *,
        subject: str,
        budget_id: str,
        limit: Decimal,
        spent: Decimal,
        estimate: Decimal,
        period: str,
        period_start: datetime,
        period_end: datetime,
    ) -> None:
        self.subject = subject
        self.budget_id = budget_id
        self.limit = limit
        self.spent = spent
        self.estimate = estimate
        self.period = period
        self.period_start = period_start
        self.period_end = period_end
        super().__init__(
            f"{period} budget of ${limit.normalize():f} for {subject} is used up: ${spent.normalize():f} spent or "
            f"reserved since {period_start:%Y-%m-%d %H:%M} UTC, this call estimated at ${estimate.normalize():f}"
        )


class BudgetUnavailable(BudgetError):
    """The spend of a subject with a hard budget could not be read in time, and the guard fails closed.

    Attributes:
        subject: Who.
        reason: What went wrong with the store.
    """

    def __init__(self, *, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"the budget of {subject} cannot be checked ({reason}); failing closed")


class RateLimited(BudgetError):
    """Too many requests (or tokens) for a user or tenant in the sliding minute.

    Attributes:
        subject: Who.
        unit: ``requests`` or ``tokens``.
        limit: How many per minute.
        retry_after: Seconds until the call would be admitted, if nothing else is.
    """

    def __init__(self, *, subject: str, unit: str, limit: int, retry_after: float) -> None:
        self.subject = subject
        self.unit = unit
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"{subject} is over {limit:,} {unit} per minute; retry in {retry_after:.2f} s")
