"""Hot statements, compiled once and run straight on the database driver.

For a short statement, SQLAlchemy's `Connection.execute` costs more than SQLite's own
work: on the benchmark machine a session read by primary key took about 87
microseconds through it against 26 run on the `sqlite3` cursor (the execution context,
the result object and its rows; docs/performance.md). A `Prepared` statement is still
written in SQLAlchemy Core and still converted by the column types' own bind and result
processors: only the per-call machinery is skipped. Statements that SQLAlchemy must
render per call (`IN` lists of any length) stay on `Connection.execute`.

Which connection takes the shortcut is the connection's business
(`StoreConnection.fetch`): SQLite's connections on the event loop, and PostgreSQL's
reader connections (autocommit: no transaction to keep in step with SQLAlchemy's),
through asyncpg, whose statement cache prepares each statement once per connection.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Dialect, exc
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any] | None
T = TypeVar("T")


class Prepared:
    """A Core statement with named bind parameters, ready to run many times.

    `statement` either returns rows (a SELECT, or DML with RETURNING; read with
    `StoreConnection.fetch`) or is an INSERT run with several parameter sets
    (`StoreConnection.execute_many`). An INSERT without explicit values names the
    columns it is given in `column_keys`, as `Connection.execute` would take them from
    the parameters.
    """

    __slots__ = ("_column_keys", "_plans", "statement")

    def __init__(self, statement: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._plans: dict[str, Plan | None] = {}

    def plan(self, dialect: Dialect) -> Plan | None:
        """The statement compiled for `dialect` (once, on first use); None when it must
        be rendered per call (an `IN` list), so `Connection.execute` has to run it."""
        try:
            return self._plans[dialect.name]
        except KeyError:
            pass
        try:
            plan: Plan | None = Plan(self.statement, dialect, self._column_keys)
        except _Unplannable:
            plan = None
        self._plans[dialect.name] = plan
        return plan


class _Unplannable(Exception):
    pass


class Plan:
    """What running a statement on the driver takes: its SQL text, the bind values in
    order (each through its type's bind processor, defaults from literal values in the
    statement), and each result column's name and result processor."""

    __slots__ = ("_makers", "_names", "_processors", "_row", "sql", "values")

    def __init__(
        self, statement: Executable, dialect: Dialect, column_keys: list[str] | None
    ) -> None:
        compiled = cast(ClauseElement, statement).compile(dialect=dialect, column_keys=column_keys)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:
            raise _Unplannable("a positional paramstyle is needed")
        binds: list[tuple[str, bool, Any, Processor]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:
                raise _Unplannable(f"{name}: IN lists are rendered per call")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, bind.required, bind.effective_value, processor))
        self.values = _values_maker(binds)
        columns = getattr(statement, "exported_columns", ())
        names = [column.name for column in columns]
        if len(set(names)) != len(names):
            raise _Unplannable("result columns need distinct names")
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self._names, self._processors = tuple(names), tuple(processors)
        self._row = _row_maker(names, processors)
        self._makers: dict[Callable[..., Any], Callable[[Sequence[Any]], Any]] = {}
        self.sql = compiled.string

    values: Callable[[Mapping[str, Any]], list[Any]]
    """The bind values for a mapping of parameters, in the statement's order (each
    through its type's bind processor; an optional parameter left out takes its default).
    Raises KeyError when a parameter the statement needs is missing."""

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Driver rows as mappings of column name to value, as SQLAlchemy would read them."""
        return list(map(self._row, raw))

    def tuples(self, raw: list[Sequence[Any]]) -> list[Sequence[Any]]:
        """Driver rows as sequences of their values as SQLAlchemy would read them, in
        the statement's column order: the rows themselves when no column needs
        converting (no object made per row)."""
        if not any(self._processors):
            return raw
        return self.made(raw, _values)

    def made(self, raw: Sequence[Sequence[Any]], make: Callable[..., T]) -> list[T]:
        """`make(*values)` for each driver row, the values as SQLAlchemy would read them
        (in the statement's column order): a record straight from the row, no mapping."""
        maker = self._makers.get(make)
        if maker is None:
            maker = self._makers[make] = _row_maker(self._names, self._processors, make)
        return list(map(maker, raw))


def _values(*values: Any) -> tuple[Any, ...]:
    return values


def _values_maker(
    binds: Sequence[tuple[str, bool, Any, Processor]],
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function from a parameter mapping to the statement's bind values, generated
    once per statement as `_row_maker` is (a loop over the binds in Python cost two to
    three times as much: an append binds 35 values in three statements)."""
    scope: dict[str, Any] = {}
    values = []
    for i, (name, required, default, processor) in enumerate(binds):
        scope[f"n{i}"], scope[f"d{i}"] = name, default
        value = f"parameters[n{i}]" if required else f"parameters.get(n{i}, d{i})"
        if processor is not None:
            scope[f"p{i}"] = processor
            value = f"p{i}({value})"
        values.append(value)
    source = f"def values(parameters):\n    return [{', '.join(values)}]\n"
    exec(source, scope)  # noqa: S102 (made of generated names only)
    return cast(Callable[[Mapping[str, Any]], list[Any]], scope["values"])


def _row_maker(
    names: Sequence[str],
    processors: Sequence[Processor | None],
    make: Callable[..., Any] | None = None,
) -> Callable[[Sequence[Any]], Any]:
    """A function from a driver row to its mapping (or, with `make`, to `make(*values)`),
    each value through its column's result processor: generated once per statement (a
    loop over the columns in Python cost three times as much per row). A named tuple
    class as `make` is filled by `tuple.__new__` (its own `__new__` is a Python call
    more per row), so its fields must be the columns, in order."""
    values = [
        f"values[{i}]" if p is None else f"p{i}(values[{i}])" for i, p in enumerate(processors)
    ]
    if make is None:
        body = "{" + ", ".join(f"{n!r}: {v}" for n, v in zip(names, values, strict=True)) + "}"
    elif isinstance(make, type) and issubclass(make, tuple) and hasattr(make, "_fields"):
        if len(make._fields) != len(values):
            raise ValueError(f"{make.__name__} has {len(make._fields)} fields, not {len(values)}")
        if not any(processors):  # the row as it is: no Python call per row
            return cast(Callable[[Sequence[Any]], Any], functools.partial(tuple.__new__, make))
        body = f"new(make, ({', '.join(values)},))"
    else:
        body = f"make({', '.join(values)})"
    scope: dict[str, Any] = {f"p{i}": p for i, p in enumerate(processors) if p is not None}
    scope["make"] = make
    scope["new"] = tuple.__new__
    exec(f"def row(values):\n    return {body}\n", scope)  # noqa: S102 (made of column names)
    return cast(Callable[[Sequence[Any]], Any], scope["row"])


def driver_error(
    plan: Plan, error: Exception, base: type[Exception] = sqlite3.Error, invalidated: bool = False
) -> exc.DBAPIError:
    """A driver error (`base` the driver's DB-API base class) as the SQLAlchemy error
    `Connection.execute` would have raised, so that `translate_errors` tells a unique
    violation, a busy database or a lost connection apart the same way."""
    wrapped = exc.DBAPIError.instance(
        plan.sql, None, error, base, connection_invalidated=invalidated
    )
    assert isinstance(wrapped, exc.DBAPIError)
    return wrapped
