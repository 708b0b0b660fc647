"""Querysets compiled to SQL once per process and then only executed with new values.

Building and compiling a queryset costs Django more CPU than the database needs to answer it: about
1.5 ms for a job by primary key, against 0.3 ms for the round trip. The hot reads (the user behind an
API token on every call, a job with its segments on every detail, snapshot and page) are still written
once, as ordinary querysets; a `CompiledQuery` compiles its queryset the first time, with marker values
in place of the arguments, and afterwards runs the same SQL with the arguments put where the markers
were. Rows go through Django's own converters, `Model.from_db` and select_related populators, so the
instances are the ones the ORM would have built.

Only the values may change between calls, never the shape: a queryset whose SQL depends on an
argument (a staff user sees every job, a person only their own) is compiled once per shape, which the
caller names with `shape`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet, signals
from django.db.models.base import ModelState
from django.db.models.query import ModelIterable, get_related_populators

M = TypeVar("M", bound=Model)

# The most shapes one query compiles; past that, calls run through the ORM (a caller building shapes
# from unbounded input would otherwise grow the cache forever).
MAX_SHAPES = 16


class Marker:
    """Distinct values that stand in for the arguments while compiling; never real ids or keys."""

    UUID = uuid.UUID("5ca1ab1e-c0de-4c0d-8e5e-00000000c0de")
    INT = -736_112_049
    STR = "\x1fcompiled-query-marker\x1f"


@dataclass(frozen=True)
class _Slot:
    """Where one argument goes in the parameter list, and how to write it there as the compiler did
    (a UUID is a UUID on PostgreSQL, 32 hex digits on SQLite)."""

    name: str
    form: Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]  # fixed values, with a _Slot where an argument goes
    compiler: Any
    converters: dict[int, Any]
    model: type[Model]
    init_list: list[str]
    model_columns: tuple[int, int]
    populators: list[Any]
    annotations: dict[str, int]
    # Every concrete field selected, and the model builds instances as Model does: rows are written
    # into new instances directly (see _plain_instance).
    plain: bool
    # Kept alive with the SQL, so a shape_key made of id()s cannot be reused by another object.
    shape: Any


def _forms(marker: Any) -> list[tuple[Any, Callable[[Any], Any]]]:
    """The ways a compiler may have written `marker` into the parameters, each with how to write a real
    value the same way."""
    if isinstance(marker, uuid.UUID):
        return [(marker, _as_uuid), (marker.hex, lambda value: _as_uuid(value).hex), (str(marker), str)]
    return [(marker, lambda value: value)]


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class CompiledQuery(Generic[M]):
    """`build(shape, **arguments)` returns the queryset; `fetch(shape=..., **values)` runs it.

    `markers` maps each argument name to its marker (a `Marker` value of the argument's type); `build`
    receives the markers while compiling and must use each where its value goes. `shape` is what else
    decides the SQL; `fetch` passes it to `build` as given (so it may carry expressions), and keys the
    compiled SQL by `shape_key(shape)`."""

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *,
        shape_key: Callable[[Any], Hashable] = lambda shape: shape,
        **markers: Any,
    ) -> None:
        self.build = build
        self.shape_key = shape_key
        self.markers = markers
        self._compiled: dict[tuple[str, Hashable], _Compiled] = {}
        self._lock = threading.Lock()

    def fetch(self, *, shape: Any = None, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[M]:
        if values.keys() != self.markers.keys():
            raise TypeError(f"fetch() takes {sorted(self.markers)}, got {sorted(values)}")
        key = (using, self.shape_key(shape))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(key, shape)
            if compiled is None:  # too many shapes: the ORM answers
                return list(self.build(shape, **values).using(using))
        params = [
            slot.form(values[slot.name]) if isinstance(slot, _Slot) else slot for slot in compiled.params
        ]
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return self._instances(compiled, rows, using)

    def _compile(self, key: tuple[str, Hashable], shape: Any) -> _Compiled | None:
        using = key[0]
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
            if len(self._compiled) >= MAX_SHAPES:
                return None
            queryset = self.build(shape, **self.markers).using(using)
            if queryset._iterable_class is not ModelIterable or queryset._prefetch_related_lookups:
                raise TypeError("a CompiledQuery builds model instances only, without prefetches")
            compiler = queryset.query.get_compiler(using=using)
            sql, raw_params = compiler.as_sql()
            # A shape may leave an argument out (staff see every job, whoever asks).
            params = self._slots(raw_params)
            select, klass_info = compiler.select, compiler.klass_info
            start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            fields = [column[0] for column in select[: compiler.col_count]]
            compiled = _Compiled(
                sql=sql,
                params=tuple(params),
                compiler=compiler,
                converters=compiler.get_converters(fields),
                model=klass_info["model"],
                init_list=[column[0].target.attname for column in select[start:end]],
                model_columns=(start, end),
                populators=get_related_populators(klass_info, select, using),
                annotations=dict(compiler.annotation_col_map or {}),
                plain=_builds_plainly(
                    klass_info["model"], [column[0].target.attname for column in select[start:end]]
                ),
                shape=shape,
            )
            self._compiled[key] = compiled
            return compiled

    def _slots(self, raw_params: tuple[Any, ...]) -> list[Any]:
        params: list[Any] = []
        for value in raw_params:
            for name, marker in self.markers.items():
                form = next((form for written, form in _forms(marker) if _same(value, written)), None)
                if form is not None:
                    params.append(_Slot(name, form))
                    break
            else:
                params.append(value)
        return params

    @staticmethod
    def _instances(compiled: _Compiled, rows: list[tuple[Any, ...]], using: str) -> list[M]:
        if compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        start, end = compiled.model_columns
        instances = []
        model, names = compiled.model, compiled.init_list
        for row in rows:
            if compiled.plain:
                instance = _plain_instance(model, names, row[start:end], using)
            else:
                instance = model.from_db(using, names, row[start:end])
            for populator in compiled.populators:
                populator.populate(row, instance)
            for name, position in compiled.annotations.items():
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances


def _builds_plainly(model: type[Model], names: list[str]) -> bool:
    """Whether an instance of `model` from a row of all its `names` may be built by _plain_instance: the
    model keeps Model's own from_db and __init__, and nothing listens to its pre_init or post_init."""
    return (
        names == [field.attname for field in model._meta.concrete_fields]
        and model.from_db.__func__ is Model.from_db.__func__
        and model.__init__ is Model.__init__
        and not signals.pre_init.has_listeners(model)
        and not signals.post_init.has_listeners(model)
    )


def _plain_instance(model: type[Model], names: list[str], values: Any, using: str) -> Model:
    # What Model.__init__ does with a full row of positional values, without its per-field setattr
    # (through each field's descriptor) and its two signal sends: on a new instance every one of those
    # descriptors only stores the value, and nothing listens (_builds_plainly). A tenth of a job
    # detail's CPU went to building its eleven instances.
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, using
    instance.__dict__.update(zip(names, values, strict=True))
    return instance


def _same(value: Any, marker: Any) -> bool:
    # type() first: True == 1 and 1.0 == 1 must not pass for the integer marker.
    return type(value) is type(marker) and value == marker
