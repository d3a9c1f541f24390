"""``guard.guarded(...)``: a budget check as a context manager or a decorator (sync or ``async def``) around the
call it admits; an exception in the block releases the reservation."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import ContextDecorator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .meter import Reservation

if TYPE_CHECKING:
    from .guard import BudgetGuard

F = TypeVar("F", bound=Callable[..., Any])


class Guarded(ContextDecorator):
    """``with guard.guarded(...)`` / ``@guard.guarded(...)``: check on entry, release if the block raises."""

    def __init__(self, guard: BudgetGuard, estimate: Any, kwargs: dict[str, Any]) -> None:
        self._guard, self._estimate, self._kwargs = guard, estimate, kwargs
        self._held: list[Reservation] = []

    def __enter__(self) -> Reservation:
        reservation = self._guard.check(self._estimate, **self._kwargs)
        self._held.append(reservation)
        return reservation

    def __exit__(self, exc_type: object, *exc: object) -> None:
        reservation = self._held.pop()
        if exc_type is not None:
            reservation.release()

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                reservation = await self._guard.acheck(self._estimate, **self._kwargs)
                try:
                    return await func(*args, **kwargs)
                except BaseException:
                    reservation.release()
                    raise

            return cast(F, guarded)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Guarded(self._guard, self._estimate, self._kwargs):
                return func(*args, **kwargs)

        return cast(F, wrapper)
