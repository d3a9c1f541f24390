"""A customer's profile — the name, e-mail and plan behind an id — and the one definition of its fields.

A profile is keyed like the calls it names: ``(tenant_id, user_id)``. A user's profile has a user id (and the
tenant their calls carry, ``""`` for none); a tenant's own profile has ``user_id = ""``. Each field carries
its ClickHouse type and one line of meaning: the ``customers`` table, the JSON and CSV records and the API's
schema derive from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .call import Column, column

PROFILE_FIELDS: tuple[str, ...] = ("display_name", "email", "plan", "metadata")
"""The fields a profile's owner writes (the ids are its key; the times are the store's)."""


@dataclass(frozen=True, slots=True)
class Customer:
    """One customer's profile: a user within a tenant, or (``user_id = ""``) a tenant."""

    tenant_id: str = column("String", 'The tenant; "" for a user whose calls carry no tenant.')
    user_id: str = column("String", 'The user, as their calls carry it; "" for the tenant\'s own profile.')
    display_name: str = column("String", "The name shown beside the id.", default="")
    email: str = column("String", "The customer's e-mail address.", default="")
    plan: str = column("LowCardinality(String)", "The customer's plan (free, pro …).", default="")
    metadata: dict[str, str] = column("Map(String, String)", "Anything else about them, as text.", default_factory=dict)
    created_at: datetime | None = column("DateTime64(3, 'UTC')", "When the profile was first written.", default=None)
    updated_at: datetime | None = column("DateTime64(6, 'UTC')", "When the profile last changed.", default=None)

    @property
    def kind(self) -> Literal["user", "tenant"]:
        """``user`` for a user's profile, ``tenant`` for a tenant's own."""
        return "user" if self.user_id else "tenant"

    def same_profile(self, other: Customer) -> bool:
        """Whether both hold the same name, e-mail, plan and metadata (times aside)."""
        return all(getattr(self, name) == getattr(other, name) for name in PROFILE_FIELDS)


CUSTOMER_COLUMNS: tuple[Column, ...] = tuple(
    Column(f.name, f.metadata["ch"], f.metadata["doc"]) for f in dataclasses.fields(Customer)
)
"""The ``customers`` table's columns in insert order: every :class:`Customer` field."""
