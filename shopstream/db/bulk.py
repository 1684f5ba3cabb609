"""Dialect-aware bulk statements shared by the projections (SQLite and PostgreSQL).

Many-row DML goes to the driver's ``executemany`` directly: the statement is compiled
once per dialect (by SQLAlchemy, from Core constructs) and each row is bound as a plain
tuple (or dict) after the column types' own bind processors (e.g.
:class:`~shopstream.db.types.Money`). SQLAlchemy's own executemany path spends more
per row on parameter bookkeeping than SQLite spends writing the row. On PostgreSQL,
plain inserts of many rows go through ``COPY ... FROM STDIN`` (about ten times cheaper
per row than a pipelined executemany). Values are always bound by the driver, never
formatted into SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from sqlite3 import SQLITE_LIMIT_VARIABLE_NUMBER
from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import (
    Connection,
    Dialect,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


def dialect_insert(connection: Connection, table: Table) -> Any:
    """The dialect's ``INSERT`` with ``ON CONFLICT`` support (SQLite and PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database {connection.dialect.name}")


class CompiledDml:
    """A DML statement compiled for one dialect: its SQL and how to bind rows."""

    def __init__(
        self, sql: str, names: tuple[str, ...], processors: tuple[Processor, ...], positional: bool
    ) -> None:
        self.sql = sql
        self.names = names
        """Parameter names, in the statement's positional order (or the dict keys)."""
        self.positional = positional
        self.processors = processors
        self._pick = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """``row``'s values in :attr:`names` order, through the types' bind processors."""
        values: tuple[Any, ...] = self._pick(row)
        if self._processed:
            processed = list(values)
            for index, process in self._processed:
                processed[index] = process(processed[index])
            values = tuple(processed)
        return values

    def bind(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """``row`` as the driver's parameters: a tuple, or a dict for named paramstyles."""
        values = self.values(row)
        return values if self.positional else dict(zip(self.names, values, strict=True))

    def bind_many(
        self, rows: Sequence[Mapping[str, Any]], renamed: Mapping[str, str] | None = None
    ) -> list[tuple[Any, ...]]:
        """Every row's :meth:`values`, built a column at a time (each column's getter and
        bind processor mapped over the rows: no per-row tuple juggling), for positional
        paramstyles. ``renamed``: parameter name -> the row key that holds its value."""
        if not self.positional:
            raise ValueError("bind_many needs a positional paramstyle")
        columns = []
        for name, process in zip(self.names, self.processors, strict=True):
            picked = map(itemgetter(renamed.get(name, name) if renamed else name), rows)
            columns.append(list(picked if process is None else map(process, picked)))
        return list(zip(*columns, strict=True))


def key_in(
    connection: Connection, column: ColumnElement[Any], keys: Sequence[Any]
) -> ColumnElement[bool]:
    """The condition matching the rows whose ``column`` is one of ``keys``, with all the
    keys in ONE bound parameter, whatever their number:

    * PostgreSQL: ``column = ANY(ARRAY(SELECT json_array_elements_text(:keys)))``;
    * SQLite: ``column IN (SELECT value FROM json_each(:keys))``;

    the keys in one JSON array. One statement per batch instead of one per chunk of
    keys matters on the writer thread: every statement gives the GIL away and has to
    win it back. On PostgreSQL, JSON rather than an array parameter: json's C encoder
    writes 2,500 keys in a fraction of what psycopg's per-element array dumper costs,
    and the planner, seeing the array's length, chose a sequential scan of a 200,000-row
    ``orders`` for 1,250 keys (18 ms, against 4 ms through the index for this form,
    whose length it does not know). The keys are compared as text.
    """
    listed = bindparam("keys", json.dumps(list(keys)), type_=String, unique=True)
    if connection.dialect.name == "postgresql":
        elements = func.json_array_elements_text(sql_cast(listed, postgresql.JSON))
        return column == any_(func.array(select(elements).scalar_subquery()))
    values = func.json_each(listed).table_valued("value")
    return column.in_(select(values.c.value))


@lru_cache(maxsize=256)
def compile_dml(
    statement: UpdateBase, dialect: Dialect, column_keys: tuple[str, ...] | None = None
) -> CompiledDml:
    """Compile ``statement`` once for ``dialect`` (cached: statements are constants)."""
    compiled = statement.compile(
        dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
    )
    names = tuple(compiled.positiontup or compiled.binds)
    processors = tuple(_processor(compiled.binds[name].type, dialect) for name in names)
    if any(compiled.binds[name].expanding for name in names):
        raise ValueError("expanding (IN) parameters are not supported in executemany")
    return CompiledDml(
        sql=compiled.string,
        names=names,
        processors=processors,
        positional=compiled.positiontup is not None,
    )


def execute_rows(
    connection: Connection, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run ``statement`` once per row (dicts keyed by its parameter names), in one
    driver ``executemany`` in the caller's transaction; return the rows it changed."""
    if not rows:
        return 0
    compiled = compile_dml(statement, connection.dialect)
    return _executemany(connection, compiled, rows)


def update_rows(
    connection: Connection,
    table: Table,
    key: str,
    columns: tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Set ``columns`` of the rows whose ``key`` column matches each of ``rows`` (dicts
    holding the key and the columns), in the caller's transaction.

    PostgreSQL: ONE statement, ``UPDATE table ... FROM json_to_recordset(:rows)``, the
    rows in one JSON text parameter (as many server round trips and plans as one
    update, not one per row; json's C encoder writes it in a fraction of what psycopg's
    per-element array dumpers cost). SQLite: one ``executemany`` of ``UPDATE ... WHERE
    key = ?`` (SQLite works in this process: a statement per row costs no round trip).
    """
    if not rows:
        return
    names = (key, *columns)
    if connection.dialect.name == "postgresql":
        statement, processors = _update_from_json(table, key, columns, connection.dialect)
        connection.execute(statement, {"rows": _json_rows(rows, names, processors)})
        return
    keyed = f"b_{key}"
    compiled = compile_dml(_update_by_key(table, key, keyed, columns), connection.dialect)
    connection.exec_driver_sql(compiled.sql, compiled.bind_many(rows, {keyed: key}))


@lru_cache(maxsize=64)
def _update_from_json(
    table: Table, key: str, columns: tuple[str, ...], dialect: Dialect
) -> tuple[TextClause, tuple[Processor, ...]]:
    """``UPDATE table SET c = staged.c, ... FROM json_to_recordset(CAST(:rows AS json))
    AS staged(key type, c type, ...) WHERE table.key = staged.key``, and the bind
    processors of (key, *columns). Each staged column has its table column's type, so a
    value is refused (too long, out of range) as an INSERT of it would be."""
    quote = dialect.identifier_preparer.quote
    names = (key, *columns)
    typed = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in names)
    assignments = ", ".join(f"{quote(n)} = staged.{quote(n)}" for n in columns)
    name = dialect.identifier_preparer.format_table(table)
    statement = text(
        f"UPDATE {name} SET {assignments} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS staged({typed}) "
        f"WHERE {name}.{quote(key)} = staged.{quote(key)}"
    ).bindparams(bindparam("rows", type_=String))
    processors = tuple(_processor(table.c[n].type, dialect) for n in names)
    return statement, processors


def _json_rows(
    rows: Sequence[Mapping[str, Any]], names: tuple[str, ...], processors: tuple[Processor, ...]
) -> str:
    """``rows`` as one JSON array of objects holding ``names``, each value through its
    bind processor first; decimals as exact strings, timestamps as ISO-8601."""
    columns = []
    for name, process in zip(names, processors, strict=True):
        picked = map(itemgetter(name), rows)
        columns.append(picked if process is None else map(process, picked))
    records = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    return json.dumps(records, default=_json_scalar, separators=(",", ":"))


def _json_scalar(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot bind {type(value).__name__} as JSON")


@lru_cache(maxsize=64)
def _update_by_key(table: Table, key: str, keyed: str, columns: tuple[str, ...]) -> UpdateBase:
    return (
        update(table)
        .where(table.c[key] == bindparam(keyed))
        .values({name: bindparam(name) for name in columns})
    )


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in the caller's transaction.

    PostgreSQL: ``COPY``. SQLite: multi-row ``INSERT ... VALUES (...), (...)``
    statements of up to :data:`MAX_ROWS_PER_INSERT` rows, so SQLite inserts hundreds
    of rows per call without the GIL (an executemany gives it away and has to win it
    back for every row, which stalls while the poll loop decodes the next batch).
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        _copy_rows(connection, table, rows)
        return
    names = tuple(rows[0])
    bound = compile_dml(_plain_insert(table), connection.dialect, names).bind_many(rows)
    largest = _rows_per_insert(connection, len(names))
    start = 0
    while start < len(bound):
        count = min(largest, 1 << ((len(bound) - start).bit_length() - 1))
        sql = _multi_row_sql(table, names, count, connection.dialect)
        connection.exec_driver_sql(sql, tuple(chain.from_iterable(bound[start : start + count])))
        start += count


MAX_ROWS_PER_INSERT = 512


def _rows_per_insert(connection: Connection, columns: int) -> int:
    """The largest power of two of rows whose parameters SQLite accepts in one statement."""
    driver = connection.connection.driver_connection
    limit = driver.getlimit(SQLITE_LIMIT_VARIABLE_NUMBER) if driver is not None else 999
    rows = max(1, min(MAX_ROWS_PER_INSERT, limit // columns))
    return 1 << (rows.bit_length() - 1)


@lru_cache(maxsize=64)
def _plain_insert(table: Table) -> UpdateBase:
    return insert(table)


@lru_cache(maxsize=256)
def _multi_row_sql(table: Table, names: tuple[str, ...], count: int, dialect: Dialect) -> str:
    """``INSERT INTO table (names) VALUES (?, ...), (?, ...)`` with ``count`` rows, their
    parameters row after row in one row's order (counts are powers of two: few
    statements to prepare). Written from the one-row statement's own SQL: compiling a
    512-row insert costs SQLAlchemy about 0.1 s, per table and count."""
    one_row = compile_dml(_plain_insert(table), dialect, names)
    head, values, group = one_row.sql.partition(" VALUES ")
    expected = "(" + ", ".join(["?"] * len(one_row.names)) + ")"
    if not one_row.positional or group != expected:
        raise RuntimeError(f"unexpected SQL for a multi-row insert into {table}: {one_row.sql}")
    return head + values + ", ".join([group] * count)


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """The type's bind processor for ``dialect``, through its dialect-specific
    implementation (e.g. Money is integer cents on SQLite, not a float)."""
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _executemany(
    connection: Connection, compiled: CompiledDml, rows: Sequence[Mapping[str, Any]]
) -> int:
    bind = compiled.bind
    # exec_driver_sql: the driver's executemany, with SQLAlchemy's error translation
    # (an unreachable database is an OperationalError like everywhere else).
    result = connection.exec_driver_sql(compiled.sql, [bind(row) for row in rows])
    return int(result.rowcount)


def _copy_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``COPY table (columns) FROM STDIN``, each row bound like an INSERT's. Driver errors
    are raised as SQLAlchemy's (an unreachable database is an OperationalError, and the
    connection is invalidated), as for every other statement."""
    one_row = compile_dml(_plain_insert(table), connection.dialect, tuple(rows[0]))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(n) for n in one_row.names)
    )
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("no driver connection")
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(one_row.values(row))
    except psycopg.Error as exc:
        disconnected = connection.dialect.is_disconnect(cast(Any, exc), driver, None)
        if disconnected:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            f"COPY {table.name}",
            None,
            exc,
            psycopg.Error,
            connection_invalidated=disconnected,
            dialect=connection.dialect,
        ) from exc
