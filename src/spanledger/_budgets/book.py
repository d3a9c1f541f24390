"""Which budgets apply to a call: the current budgets indexed by subject (see ``model.py`` for the rules).

A user's own budgets (``user``, ``pair``) replace the defaults; every matching default applies otherwise
(``tenant_default`` of the call's tenant, ``tag_default`` of each of its tags, in any tenant or the call's);
the tenant's own budget applies on top. A call with no user id is held only to its tenant's budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from .meter import Key
from .model import Budget
from .spend import Kind, subject_of

KIND_OF_SCOPE: dict[str, Kind] = {
    "user": "user",
    "pair": "pair",
    "tenant_default": "pair",
    "tag_default": "pair",
    "tenant": "tenant",
}
"""Whose spend a budget of each scope counts: a user's everywhere, a user's within a tenant, a tenant's."""


class BudgetBook:
    """The budgets in force, indexed for :meth:`applicable`."""

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self.budgets = list(budgets)
        self._user: dict[str, list[Budget]] = {}
        self._pair: dict[tuple[str, str], list[Budget]] = {}
        self._tenant: dict[str, list[Budget]] = {}
        self._tenant_default: dict[str, list[Budget]] = {}
        self._tag: dict[tuple[str, str], list[Budget]] = {}
        for b in self.budgets:
            if b.scope == "user":
                self._user.setdefault(b.user_id, []).append(b)
            elif b.scope == "pair":
                self._pair.setdefault((b.tenant_id, b.user_id), []).append(b)
            elif b.scope == "tenant":
                self._tenant.setdefault(b.tenant_id, []).append(b)
            elif b.scope == "tenant_default":
                self._tenant_default.setdefault(b.tenant_id, []).append(b)
            else:
                self._tag.setdefault((b.tag_key, b.tag_value), []).append(b)

    def __len__(self) -> int:
        return len(self.budgets)

    def own(self, tenant_id: str, user_id: str) -> list[Budget]:
        """A user's own budgets: theirs in every tenant, and theirs within ``tenant_id``."""
        return [*self._user.get(user_id, ()), *self._pair.get((tenant_id, user_id), ())]

    def applicable(self, tenant_id: str, user_id: str, tags: Mapping[str, str] | None = None) -> list[Budget]:
        """Every budget a call of this user, tenant and tags counts against."""
        out: list[Budget] = []
        if user_id:
            own = self.own(tenant_id, user_id)
            if own:
                out.extend(own)
            else:
                out.extend(self._tenant_default.get(tenant_id, ()))
                for key, value in (tags or {}).items():
                    out.extend(b for b in self._tag.get((key, value), ()) if b.tenant_id in ("", tenant_id))
        if tenant_id:
            out.extend(self._tenant.get(tenant_id, ()))
        return out


def key_for(budget: Budget, tenant_id: str, user_id: str, at: datetime) -> Key | None:
    """The spend a budget counts for this subject in the period containing ``at`` (``None``: a custom period
    ``at`` is outside of)."""
    window = budget.window(at)
    if window is None:
        return None
    kind = KIND_OF_SCOPE[budget.scope]
    return Key(kind, subject_of(kind, tenant_id, user_id), window.start, window.end)
