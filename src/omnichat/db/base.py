"""Declarative base and column types shared by every domain's models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import ColumnDefault, DateTime, MetaData, String, TypeDecorator, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from omnichat.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend stores (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Every model. Column defaults made in Python (ids, timestamps, statuses, counters) are
    applied when an object is constructed, not when it is flushed: an object has its identity
    from birth, and a value read before the flush is the value that will be stored. (A default
    applied only at flush once named every upload of a user ``documents/<user>/None``.)"""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    _construction_defaults: ClassVar[dict[type, list[tuple[str, Callable[[], Any]]]]] = {}

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        for key, value in values.items():
            if not hasattr(cls, key):
                raise TypeError(f"{key!r} is an invalid keyword argument for {cls.__name__}")
            setattr(self, key, value)
        for key, make in _defaults_of(cls):
            if key not in values:
                setattr(self, key, make())


def _defaults_of(cls: type[Base]) -> list[tuple[str, Callable[[], Any]]]:
    """(attribute, value maker) for each column of ``cls`` with a Python-side default."""
    cached = Base._construction_defaults.get(cls)
    if cached is None:
        cached = []
        for attribute in inspect(cls).column_attrs:
            default = attribute.columns[0].default
            if isinstance(default, ColumnDefault):
                cached.append((attribute.key, _maker(default)))
        Base._construction_defaults[cls] = cached
    return cached


def _maker(default: ColumnDefault) -> Callable[[], Any]:
    if default.is_callable:
        # SQLAlchemy wraps a no-argument callable to take the execution context.
        wrapped: Callable[[Any], Any] = default.arg
        return lambda: wrapped(None)
    value = default.arg
    return lambda: value


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
