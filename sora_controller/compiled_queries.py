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

import datetime
import json
import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import AutoField, FileField, Model, QuerySet, signals
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
        prepared = self._prepared(shape, using, values)
        if prepared is None:  # too many shapes: the ORM answers
            return list(self.build(shape, **values).using(using))
        compiled, params = prepared
        with connections[using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return self._instances(compiled, rows, using)

    def _prepared(self, shape: Any, using: str, values: dict[str, Any]) -> tuple[_Compiled, list[Any]] | None:
        """The compiled SQL for `shape` and its parameters with `values` in place; None past MAX_SHAPES."""
        if values.keys() != self.markers.keys():
            raise TypeError(f"fetch() takes {sorted(self.markers)}, got {sorted(values)}")
        key = (using, self.shape_key(shape))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(key, shape)
            if compiled is None:
                return None
        params = [
            slot.form(values[slot.name]) if isinstance(slot, _Slot) else slot for slot in compiled.params
        ]
        return compiled, params

    def first(self, *, shape: Any = None, using: str = DEFAULT_DB_ALIAS, **values: Any) -> M | None:
        """The first instance `fetch` gives, or None (a queryset of one row, `[:1]`, asks only for it)."""
        found = self.fetch(shape=shape, using=using, **values)
        return found[0] if found else None

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


def fetch_together(
    *calls: tuple[CompiledQuery[Any], Any, dict[str, Any]], using: str = DEFAULT_DB_ALIAS
) -> list[list[Any]]:
    """Each call's `(query, shape, values)` fetched as query.fetch(shape=shape, **values) would, in one
    round trip on PostgreSQL: the statements go as one message, separated by semicolons (psycopg's
    client-side binding allows several), and each result is read in turn. Elsewhere (another database,
    or OPTIONS server_side_binding, which takes one statement per call), or when one of them is past
    its shapes, one after the other. Every statement must be scoped on its own: all run, whatever the
    others find."""
    connection = connections[using]

    def separately() -> list[list[Any]]:
        return [query.fetch(shape=shape, using=using, **values) for query, shape, values in calls]

    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("server_side_binding"):
        return separately()
    prepared = [query._prepared(shape, using, values) for query, shape, values in calls]
    if any(found is None for found in prepared):
        return separately()
    sql = "; ".join(compiled.sql for compiled, _ in prepared)
    params = [param for _, found in prepared for param in found]
    results: list[list[Any]] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for position, (compiled, _) in enumerate(prepared):
            if position:
                cursor.nextset()
            results.append(calls[position][0]._instances(compiled, cursor.fetchall(), using))
    return results


# --- Inserts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledInsert:
    sql: str
    parent_fields: list[Any]
    child_fields: list[Any]
    child_keys: list[str]  # each child's values are one JSON object with these keys (its columns)
    returning: list[Any]  # the child fields the statement returns (its RETURNING), in order
    converters: dict[int, Any]
    compiler: Any


class CompiledInsert:
    """A new row and its new children (rows of `child` with a foreign key to it) inserted by one
    statement on PostgreSQL, `WITH parent AS (INSERT ...) INSERT ... children ... RETURNING`, its SQL
    compiled once per process by Django's own insert compilers.

    What it saves, against `parent.save()` then `bulk_create(children)` in a transaction: the two
    insert compilations, and three of the four round trips (BEGIN, the parent, the children, COMMIT):
    one statement is atomic on its own. The values are those the ORM writes, prepared per field as its
    compiler prepares them (pre_save, get_db_prep_save), and the instances end as the ORM leaves them
    (primary keys returned, saved state). `insert` answers False, having written nothing, when the ORM
    must do it instead: not PostgreSQL, someone listens to the parent's save signals, a value is an
    expression or has no exact JSON form, a parent without its primary key or a child with one.

    The children travel as one parameter, a JSON array of rows that `jsonb_to_recordset` turns back
    into the columns' own types (as bulk_create's UNNEST of one array per column does). One parameter
    instead of one per column keeps the statement under psycopg's 50 parameters, past which it parses
    the statement again on every call; with the arrays' dumping, that was a fifth of a create's CPU."""

    def __init__(self, parent: type[Model], child: type[Model]) -> None:
        self.parent, self.child = parent, child
        self._compiled: dict[str, _CompiledInsert | None] = {}
        self._lock = threading.Lock()

    def insert(self, parent: Model, children: list[Model], *, using: str = DEFAULT_DB_ALIAS) -> bool:
        connection = connections[using]
        compiled = self._compiled.get(using)
        if compiled is None:
            if using in self._compiled or connection.vendor != "postgresql":
                return False
            compiled = self._compile(using)
            if compiled is None:
                return False
        if not self._plain_save(parent, children):
            return False
        # As Model.save() and QuerySet.bulk_create() check before writing.
        parent._prepare_related_fields_for_save(operation_name="save")
        for child in children:
            child._prepare_related_fields_for_save(operation_name="bulk_create")
        params = _prepared_values(parent, compiled.parent_fields, connection)
        rows = [_prepared_values(child, compiled.child_fields, connection) for child in children]
        if params is None or any(row is None for row in rows):
            return False
        children_json = _json_rows(compiled.child_keys, rows)
        if children_json is None:
            return False
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(compiled.sql, [*params, children_json])
            returned = cursor.fetchall() if compiled.returning else []
        if compiled.converters:
            returned = list(compiled.compiler.apply_converters(returned, compiled.converters))
        for child, values in zip(children, returned or [()] * len(children), strict=True):
            for field, value in zip(compiled.returning, values, strict=True):
                setattr(child, field.attname, value)
        for instance in (parent, *children):
            instance._state.adding, instance._state.db = False, using
        return True

    def _plain_save(self, parent: Model, children: list[Model]) -> bool:
        # save() sends pre_save and post_save (bulk_create sends nothing): with listeners, the ORM saves.
        return (
            type(parent) is self.parent
            and all(type(child) is self.child for child in children)
            and parent._is_pk_set()
            and all(child.pk is None for child in children)
            and not signals.pre_save.has_listeners(self.parent)
            and not signals.post_save.has_listeners(self.parent)
        )

    def _compile(self, using: str) -> _CompiledInsert | None:
        with self._lock:
            if using not in self._compiled:
                self._compiled[using] = self._build(using)
            return self._compiled[using]

    def _build(self, using: str) -> _CompiledInsert | None:
        from django.db.models.sql import InsertQuery

        parent_meta, child_meta = self.parent._meta, self.child._meta
        if parent_meta.parents or child_meta.parents or parent_meta.db_returning_fields:
            return None  # several tables, or a parent whose insert returns values: the ORM's case
        if parent_meta.order_with_respect_to or any(
            hasattr(field, "get_placeholder") for field in (*parent_meta.fields, *child_meta.fields)
        ):
            return None
        # The fields Model._save_table() inserts for a parent with its primary key set, and the ones
        # bulk_create() inserts for children without theirs.
        parent_fields = [field for field in parent_meta.local_concrete_fields if not field.generated]
        child_fields = [
            field
            for field in child_meta.concrete_fields
            if not field.generated and not isinstance(field, AutoField)
        ]
        returning = list(child_meta.db_returning_fields)
        connection = connections[using]
        # The parent's statement as Django compiles it, from a blank instance (its values are not kept).
        parent_query = InsertQuery(self.parent)
        parent_query.insert_values(parent_fields, [self.parent()])
        ((parent_sql, _),) = parent_query.get_compiler(using=using).as_sql()
        if parent_sql.count("%s") != len(parent_fields):
            return None
        # The children's: their rows from the JSON parameter, each column read as its own type.
        quote = connection.ops.quote_name
        types = [field.db_type(connection) for field in child_fields]
        if None in types:
            return None
        table, columns = quote(child_meta.db_table), ", ".join(quote(f.column) for f in child_fields)
        row_type = ", ".join(f"{quote(f.column)} {t}" for f, t in zip(child_fields, types, strict=True))
        child_sql = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f'FROM jsonb_to_recordset(%s::jsonb) AS "compiled_insert_child"({row_type})'
        )
        if returning:
            child_sql += " RETURNING " + ", ".join(f"{table}.{quote(f.column)}" for f in returning)
        # Django's converters for what RETURNING gives back, as its own insert compiler applies them.
        compiler = InsertQuery(self.child).get_compiler(using=using)
        return _CompiledInsert(
            sql=f'WITH "compiled_insert_parent" AS ({parent_sql}) {child_sql}',
            parent_fields=parent_fields,
            child_fields=child_fields,
            child_keys=[field.column for field in child_fields],
            returning=returning,
            converters=compiler.get_converters([f.get_col(child_meta.db_table) for f in returning]),
            compiler=compiler,
        )


def _json_rows(keys: list[str], rows: list[list[Any]]) -> str | None:
    """Rows of prepared values as a JSON array of objects, each value in the text PostgreSQL reads back
    as the same value; None when one has no such form here (see _json_value, or a float that is not
    finite)."""
    try:
        return json.dumps(
            [dict(zip(keys, row, strict=True)) for row in rows], default=_json_value, allow_nan=False
        )
    except (TypeError, ValueError):
        return None


def _json_value(value: Any) -> Any:
    # What json cannot write itself: a Decimal as its exact digits, a datetime in ISO 8601 with its
    # offset, both as the column types read them. Anything else (a JSON column's document, a duration,
    # bytes) is left to the ORM.
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} has no exact JSON form here")


def _prepared_values(instance: Model, fields: list[Any], connection: Any) -> list[Any] | None:
    """The values of `instance` as SQLInsertCompiler prepares them; None when one is an expression
    (which the ORM's compiler resolves into SQL of its own)."""
    values = []
    for field in fields:
        raw = instance.__dict__.get(field.attname)
        if isinstance(field, FileField) and isinstance(raw, str):
            # A file field holding only its file's name: that name, as pre_save and get_db_prep_save
            # give it, without the FieldFile they build, which points back at the instance (a cycle
            # that would leave every new segment to the garbage collector).
            values.append(raw)
            continue
        value = field.pre_save(instance, add=True)
        if hasattr(value, "resolve_expression"):
            return None
        values.append(field.get_db_prep_save(value, connection=connection))
    return values
