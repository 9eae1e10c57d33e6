"""A typed SQL grammar for Hypothesis: view queries over relations with known columns.

Private helper of :mod:`pytest_planguard.strategies`.  Every query it draws is valid for
both sqlglot (the engine-free semantic compile) and DataFusion 55 (planning): expressions
are typed by *kind*, every output column gets a unique alias, UNION ALL branches cast to
one canonical SQL type per column, and literals stay small so constant folding never
overflows.  Each drawn :class:`Query` reports the grammar productions it used
(``features``), so tests can assert coverage and label examples with ``event()``.

Grammar (informally)::

    query     := [WITH cte AS (select) {, cte AS (select)}] body [ORDER BY ...] [LIMIT n]
    body      := select | select UNION ALL select
    select    := projection | aggregate | window          (each over one `from`)
    from      := relation [AS alias]
               | relation AS lhs (INNER | LEFT) JOIN relation AS rhs ON lhs.k = rhs.k [AND p]
    expr      := column | literal | arithmetic | CASE | coalesce | CAST | string function
               | udf(CAST(expr AS DOUBLE))                  (when the case registers a UDF)
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from hypothesis import strategies as st

Kind: TypeAlias = Literal["int", "float", "str", "bool", "date", "ts"]
Draw: TypeAlias = st.DrawFn

KINDS: tuple[Kind, ...] = ("int", "float", "str", "bool", "date", "ts")
COMPARABLE: tuple[Kind, ...] = ("int", "float", "str", "date")
JOIN_KEY_KINDS: tuple[Kind, ...] = ("int", "str", "date")
UNION_KINDS: tuple[Kind, ...] = ("int", "float", "str", "bool", "date")
SQL_TYPE: dict[Kind, str] = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "str": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
    "ts": "TIMESTAMP",
}

FEATURES: tuple[str, ...] = (
    "projection",
    "select_star",
    "filter",
    "inner_join",
    "left_join",
    "aggregate",
    "group_by",
    "having",
    "union_all",
    "cte",
    "window",
    "order_by",
    "limit",
    "udf",
    "quoted_identifier",
    "case_when",
    "cast",
    "string_literal",
)
"""Every grammar production a drawn query can report in ``Query.features``."""

SAFE_PREFIXES = ("t", "v", "c", "k", "col", "key", "amount", "label", "flag", "day", "val")
_SAFE_RE = re.compile(r"^(?:" + "|".join(SAFE_PREFIXES) + r")_[0-9]{1,2}$")
NAME_PATTERN = r"[a-z_][a-z0-9_]{0,62}"
RESERVED = frozenset({"information_schema", "datafusion", "public", "pg_catalog"})
SQL_WORDS = (
    "select", "from", "where", "order", "group", "by", "table", "user", "key", "value",
    "limit", "union", "all", "window", "date", "sum", "count", "join", "left", "on",
    "values", "with", "case", "end", "null", "true", "lhs", "rhs", "_", "__", "a",
)  # fmt: skip
"""Legal manifest names that are SQL keywords or function names: always quoted."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a relation: its name and its kind."""

    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Relation:
    """A dataset, view or CTE that a query can read, with its output columns."""

    name: str
    columns: tuple[Column, ...]

    def of_kind(self, kind: Kind) -> tuple[Column, ...]:
        return tuple(column for column in self.columns if column.kind == kind)


@dataclass(frozen=True, slots=True)
class Query:
    """A drawn query: its text, output columns, what it reads and calls, what it used."""

    sql: str
    columns: tuple[Column, ...]
    reads: frozenset[str]
    udfs: frozenset[str]
    features: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Ref:
    qualifier: str | None
    column: Column

    def sql(self) -> str:
        name = quote(self.column.name)
        return f"{quote(self.qualifier)}.{name}" if self.qualifier else name


class _Builder:
    """Accumulates what one query reads, calls and uses while it is drawn."""

    def __init__(self, draw: Draw, udf: str | None) -> None:
        self.draw = draw
        self.udf = udf
        self.reads: set[str] = set()
        self.udfs: set[str] = set()
        self.features: set[str] = set()
        self.ctes: set[str] = set()

    def use(self, *features: str) -> None:
        self.features.update(features)

    def read(self, relation: Relation) -> str:
        if relation.name not in self.ctes:
            self.reads.add(relation.name)
        return self.ident(relation.name)

    def ident(self, name: str) -> str:
        quoted = quote(name)
        if quoted != name:
            self.use("quoted_identifier")
        return quoted


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is written unquoted (never a keyword in sqlglot or DataFusion)."""
    return _SAFE_RE.fullmatch(name) is not None


def quote(name: str) -> str:
    """``name`` as a SQL identifier: bare when safe, double-quoted otherwise."""
    return name if is_safe_name(name) else '"' + name.replace('"', '""') + '"'


def _safe_name(prefix: str, number: int) -> str:
    return f"{prefix}_{number}"


def _join_name(first: str, rest: str) -> str:
    return first + rest


def _not_reserved(name: str) -> bool:
    return name not in RESERVED


_FIRST = "abcdefghijklmnopqrstuvwxyz_"


@functools.cache
def names() -> st.SearchStrategy[str]:
    """Valid manifest names: mostly plain ones, sometimes keywords or long exotic ones.

    Every name matches ``NAME_PATTERN`` (``[a-z_][a-z0-9_]{0,62}``) and is not reserved.
    Built once: constructing strategies on every draw would dominate generation time.
    """
    safe = st.builds(
        _safe_name, st.sampled_from(SAFE_PREFIXES), st.integers(min_value=0, max_value=99)
    )
    pattern = st.builds(
        _join_name,
        st.sampled_from(_FIRST),
        st.text(alphabet=_FIRST + "0123456789", max_size=62),
    )
    exotic = st.one_of(st.sampled_from(SQL_WORDS), pattern).filter(_not_reserved)
    return st.one_of(safe, safe, exotic)


@functools.cache
def _name_lists(count: int) -> st.SearchStrategy[list[str]]:
    return st.lists(names(), min_size=count, max_size=count, unique=True)


def sql_string(text: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


_MIN_DATE = datetime.date(1970, 1, 1)
_MAX_DATE = datetime.date(2100, 12, 31)
_LITERAL_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6
)


def _literal(b: _Builder, kind: Kind) -> str:
    draw = b.draw
    if draw(st.integers(0, 9)) == 0:
        return f"CAST(NULL AS {SQL_TYPE[kind]})"
    if kind == "int":
        return f"({draw(st.integers(-100, 100))})"
    if kind == "float":
        return f"({draw(st.integers(-10_000, 10_000)) / 100:.2f})"
    if kind == "str":
        b.use("string_literal")
        return sql_string(draw(_LITERAL_TEXT))
    if kind == "bool":
        return draw(st.sampled_from(("TRUE", "FALSE")))
    if kind == "date":
        day = draw(st.dates(min_value=_MIN_DATE, max_value=_MAX_DATE))
        return f"DATE '{day.isoformat()}'"
    return f"CAST(NULL AS {SQL_TYPE[kind]})"


def expr(b: _Builder, scope: Sequence[_Ref], kind: Kind, depth: int = 2) -> str:
    """An expression of ``kind`` over the columns in ``scope``."""
    draw = b.draw
    columns = [ref for ref in scope if ref.column.kind == kind]
    choices: list[str] = []
    if columns:
        choices += ["column", "column"]
    choices.append("literal")
    if depth > 0:
        choices += _COMPOSITES[kind]
        if kind == "float" and b.udf is not None:
            choices.append("udf")
    choice = draw(st.sampled_from(choices))
    sub = depth - 1
    if choice == "column":
        picked: _Ref = draw(st.sampled_from(columns))
        return picked.sql()
    if choice == "literal":
        return _literal(b, kind)
    if choice == "udf":
        assert b.udf is not None
        b.use("udf", "cast")
        b.udfs.add(b.udf)
        argument = expr(b, scope, draw(st.sampled_from(("float", "int"))), sub)
        return f"{b.udf}(CAST({argument} AS DOUBLE))"
    if choice == "case":
        b.use("case_when")
        when = predicate(b, scope, sub)
        then, otherwise = expr(b, scope, kind, sub), expr(b, scope, kind, sub)
        return f"CASE WHEN {when} THEN {then} ELSE {otherwise} END"
    if choice == "coalesce":
        return f"coalesce({expr(b, scope, kind, sub)}, {expr(b, scope, kind, sub)})"
    if choice == "add":
        return f"({expr(b, scope, kind, sub)} + {expr(b, scope, kind, sub)})"
    if choice == "mul":
        return f"({expr(b, scope, kind, sub)} * {_literal(b, kind)})"
    if choice == "abs":
        return f"abs({expr(b, scope, kind, sub)})"
    if choice == "mod":
        return f"({expr(b, scope, kind, sub)} % 7)"
    if choice == "cast":
        b.use("cast")
        source: Kind = draw(st.sampled_from(_CASTABLE[kind]))
        return f"CAST({expr(b, scope, source, sub)} AS {SQL_TYPE[kind]})"
    if choice in ("upper", "lower"):
        return f"{choice}({expr(b, scope, 'str', sub)})"
    if choice == "concat":
        return f"concat({expr(b, scope, 'str', sub)}, {expr(b, scope, 'str', sub)})"
    if choice == "length":
        return f"CAST(character_length({expr(b, scope, 'str', sub)}) AS BIGINT)"
    assert kind == "bool"
    return _predicate_of(b, scope, choice, sub)


_COMPOSITES: dict[Kind, tuple[str, ...]] = {
    "int": ("add", "mul", "abs", "mod", "coalesce", "case", "cast", "length"),
    "float": ("add", "mul", "abs", "coalesce", "case", "cast"),
    "str": ("upper", "lower", "concat", "coalesce", "case", "cast"),
    "bool": ("compare", "null_test", "not", "and", "or", "in_list", "between", "like"),
    "date": ("coalesce",),
    "ts": (),
}
_CASTABLE: dict[Kind, tuple[Kind, ...]] = {
    "int": ("float", "int"),
    "float": ("int", "float"),
    "str": ("int", "date", "str"),
    "bool": ("bool",),
    "date": ("date",),
    "ts": ("ts",),
}


def predicate(b: _Builder, scope: Sequence[_Ref], depth: int = 2) -> str:
    """A boolean expression over ``scope``."""
    return expr(b, scope, "bool", max(depth, 1))


def _predicate_of(b: _Builder, scope: Sequence[_Ref], choice: str, depth: int) -> str:
    draw = b.draw
    if choice == "compare":
        kind: Kind = draw(st.sampled_from(COMPARABLE))
        op = draw(st.sampled_from(("=", "<>", "<", "<=", ">", ">=")))
        return f"({expr(b, scope, kind, depth)} {op} {expr(b, scope, kind, depth)})"
    if choice == "null_test":
        kind = draw(st.sampled_from(KINDS))
        negate = draw(st.booleans())
        return f"({expr(b, scope, kind, depth)} IS {'NOT ' if negate else ''}NULL)"
    if choice == "not":
        return f"(NOT {expr(b, scope, 'bool', depth)})"
    if choice in ("and", "or"):
        return f"({expr(b, scope, 'bool', depth)} {choice.upper()} {expr(b, scope, 'bool', depth)})"
    if choice == "in_list":
        kind = draw(st.sampled_from(COMPARABLE))
        items = ", ".join(_literal(b, kind) for _ in range(draw(st.integers(1, 3))))
        return f"({expr(b, scope, kind, depth)} IN ({items}))"
    if choice == "between":
        kind = draw(st.sampled_from(COMPARABLE))
        low, high = _literal(b, kind), _literal(b, kind)
        return f"({expr(b, scope, kind, depth)} BETWEEN {low} AND {high})"
    assert choice == "like"
    b.use("string_literal")
    pattern = draw(_LITERAL_TEXT).replace("\\", "") + draw(st.sampled_from(("%", "_", "")))
    return f"({expr(b, scope, 'str', depth)} LIKE {sql_string(pattern)})"


def _fresh_names(b: _Builder, count: int) -> list[str]:
    return list(b.draw(_name_lists(count)))


def _from_clause(b: _Builder, relations: Sequence[Relation]) -> tuple[str, list[_Ref], bool]:
    """One relation, or an inner/left join of two on keys of the same kind."""
    draw = b.draw
    left: Relation = draw(st.sampled_from(relations))
    if draw(st.integers(0, 2)) == 0:
        right: Relation = draw(st.sampled_from(relations))
        keys = [k for k in JOIN_KEY_KINDS if left.of_kind(k) and right.of_kind(k)]
        if keys:
            kind: Kind = draw(st.sampled_from(keys))
            lkey: Column = draw(st.sampled_from(left.of_kind(kind)))
            rkey: Column = draw(st.sampled_from(right.of_kind(kind)))
            join = draw(st.sampled_from(("INNER", "LEFT")))
            b.use("inner_join" if join == "INNER" else "left_join")
            scope = [_Ref("lhs", c) for c in left.columns] + [_Ref("rhs", c) for c in right.columns]
            on = f"{_Ref('lhs', lkey).sql()} = {_Ref('rhs', rkey).sql()}"
            if draw(st.booleans()):
                on += f" AND {predicate(b, scope, 1)}"
            sql = f"{b.read(left)} AS lhs {join} JOIN {b.read(right)} AS rhs ON {on}"
            return sql, scope, True
    style = draw(st.sampled_from(("bare", "alias", "qualified")))
    table = b.read(left)
    if style == "alias":
        alias = "src"
        return f"{table} AS {alias}", [_Ref(alias, c) for c in left.columns], False
    if style == "qualified":
        return table, [_Ref(left.name, c) for c in left.columns], False
    return table, [_Ref(None, c) for c in left.columns], False


def _where(b: _Builder, scope: Sequence[_Ref]) -> str:
    if b.draw(st.booleans()):
        b.use("filter")
        return f" WHERE {predicate(b, scope)}"
    return ""


def _projection(b: _Builder, relations: Sequence[Relation]) -> tuple[str, tuple[Column, ...]]:
    draw = b.draw
    b.use("projection")
    source, scope, joined = _from_clause(b, relations)
    if not joined and draw(st.integers(0, 4)) == 0:
        b.use("select_star")
        columns = tuple(ref.column for ref in scope)
        return f"SELECT * FROM {source}{_where(b, scope)}", columns
    count = draw(st.integers(1, 4))
    out_names = _fresh_names(b, count)
    items: list[str] = []
    columns_list: list[Column] = []
    for name in out_names:
        kind: Kind = draw(st.sampled_from(KINDS))
        if kind == "ts" and not any(ref.column.kind == "ts" for ref in scope):
            kind = "int"
        items.append(f"{expr(b, scope, kind)} AS {b.ident(name)}")
        columns_list.append(Column(name, kind))
    select = f"SELECT {', '.join(items)} FROM {source}{_where(b, scope)}"
    return select, tuple(columns_list)


_AGGREGATES: dict[str, tuple[tuple[Kind, ...], Callable[[Kind], Kind]]] = {
    "sum": (("int", "float"), lambda k: k),
    "avg": (("int", "float"), lambda k: "float"),
    "min": (("int", "float", "str", "date", "ts"), lambda k: k),
    "max": (("int", "float", "str", "date", "ts"), lambda k: k),
    "count": (KINDS, lambda k: "int"),
}


def _aggregate(b: _Builder, relations: Sequence[Relation]) -> tuple[str, tuple[Column, ...]]:
    draw = b.draw
    b.use("aggregate")
    source, scope, _ = _from_clause(b, relations)
    where = _where(b, scope)
    groupable = [ref for ref in scope if ref.column.kind != "float"]
    groups: list[_Ref] = []
    if groupable and draw(st.integers(0, 3)) > 0:
        groups = list(
            draw(st.lists(st.sampled_from(groupable), min_size=1, max_size=2, unique=True))
        )
    aggs = draw(st.integers(1, 3))
    out_names = _fresh_names(b, len(groups) + aggs)
    items: list[str] = []
    columns: list[Column] = []
    for ref, name in zip(groups, out_names, strict=False):
        items.append(f"{ref.sql()} AS {b.ident(name)}")
        columns.append(Column(name, ref.column.kind))
    for name in out_names[len(groups) :]:
        func = draw(st.sampled_from(sorted(_AGGREGATES)))
        kinds, result = _AGGREGATES[func]
        candidates = [ref for ref in scope if ref.column.kind in kinds]
        if func == "count" and (not candidates or draw(st.booleans())):
            distinct = ""
            argument = "*"
            kind: Kind = "int"
        elif candidates:
            ref = draw(st.sampled_from(candidates))
            distinct = "DISTINCT " if func == "count" and draw(st.booleans()) else ""
            argument = ref.sql()
            kind = result(ref.column.kind)
        else:
            func, distinct, argument, kind = "count", "", "*", "int"
        items.append(f"{func}({distinct}{argument}) AS {b.ident(name)}")
        columns.append(Column(name, kind))
    sql = f"SELECT {', '.join(items)} FROM {source}{where}"
    if groups:
        b.use("group_by")
        by_ordinal = draw(st.booleans())
        keys = (
            [str(i + 1) for i in range(len(groups))]
            if by_ordinal
            else [ref.sql() for ref in groups]
        )
        sql += " GROUP BY " + ", ".join(keys)
        if draw(st.booleans()):
            b.use("having")
            sql += f" HAVING count(*) >= {draw(st.integers(0, 3))}"
    return sql, tuple(columns)


def _window(b: _Builder, relations: Sequence[Relation]) -> tuple[str, tuple[Column, ...]]:
    draw = b.draw
    b.use("window")
    source, scope, _ = _from_clause(b, relations)
    where = _where(b, scope)
    keep = draw(st.lists(st.sampled_from(scope), min_size=0, max_size=2, unique=True))
    windows = draw(st.integers(1, 2))
    out_names = _fresh_names(b, len(keep) + windows)
    items: list[str] = []
    columns: list[Column] = []
    for ref, name in zip(keep, out_names, strict=False):
        items.append(f"{ref.sql()} AS {b.ident(name)}")
        columns.append(Column(name, ref.column.kind))
    orderable = [ref for ref in scope if ref.column.kind != "bool"]
    for name in out_names[len(keep) :]:
        partition = ""
        if draw(st.booleans()):
            partition = "PARTITION BY " + draw(st.sampled_from(scope)).sql()
        order = ""
        if draw(st.booleans()) and orderable:
            order = f"ORDER BY {draw(st.sampled_from(orderable)).sql()}"
            order += draw(st.sampled_from(("", " DESC", " ASC NULLS FIRST")))
        over = f"OVER ({' '.join(part for part in (partition, order) if part)})"
        numeric = [ref for ref in scope if ref.column.kind in ("int", "float")]
        func = draw(st.sampled_from(("row_number", "rank", "sum", "lag")))
        kind: Kind
        if func in ("row_number", "rank"):
            text, kind = f"CAST({func}() {over} AS BIGINT)", "int"
        elif func == "sum" and numeric:
            ref = draw(st.sampled_from(numeric))
            text, kind = f"sum({ref.sql()}) {over}", ref.column.kind
        else:
            ref = draw(st.sampled_from(scope))
            text, kind = f"lag({ref.sql()}) {over}", ref.column.kind
        items.append(f"{text} AS {b.ident(name)}")
        columns.append(Column(name, kind))
    return f"SELECT {', '.join(items)} FROM {source}{where}", tuple(columns)


def _union(b: _Builder, relations: Sequence[Relation]) -> tuple[str, tuple[Column, ...]]:
    draw = b.draw
    b.use("union_all", "cast")
    count = draw(st.integers(1, 3))
    kinds: list[Kind] = [draw(st.sampled_from(UNION_KINDS)) for _ in range(count)]
    out_names = _fresh_names(b, count)
    branches: list[str] = []
    for _ in range(draw(st.integers(2, 3))):
        source, scope, _ = _from_clause(b, relations)
        items = ", ".join(
            f"CAST({expr(b, scope, kind, 1)} AS {SQL_TYPE[kind]}) AS {b.ident(name)}"
            for kind, name in zip(kinds, out_names, strict=True)
        )
        branches.append(f"SELECT {items} FROM {source}{_where(b, scope)}")
    columns = tuple(Column(name, kind) for name, kind in zip(out_names, kinds, strict=True))
    return " UNION ALL ".join(branches), columns


_SHAPES = (_projection, _aggregate, _window, _union)


def _select(b: _Builder, relations: Sequence[Relation]) -> tuple[str, tuple[Column, ...]]:
    shape = b.draw(st.sampled_from(_SHAPES))
    return shape(b, relations)


def _order_limit(b: _Builder, columns: Sequence[Column], union: bool) -> str:
    draw = b.draw
    suffix = ""
    orderable = [
        (index, column) for index, column in enumerate(columns) if column.kind not in ("bool",)
    ]
    if draw(st.booleans()) and orderable:
        b.use("order_by")
        picked = draw(st.lists(st.sampled_from(orderable), min_size=1, max_size=2, unique=True))
        keys = []
        for index, column in picked:
            key = b.ident(column.name) if union or draw(st.booleans()) else str(index + 1)
            keys.append(key + draw(st.sampled_from(("", " DESC", " ASC", " DESC NULLS LAST"))))
        suffix += " ORDER BY " + ", ".join(keys)
    if draw(st.booleans()):
        b.use("limit")
        suffix += f" LIMIT {draw(st.integers(0, 50))}"
    return suffix


@st.composite
def queries(
    draw: Draw,
    relations: Sequence[Relation],
    *,
    udf: str | None = None,
    taken: frozenset[str] = frozenset(),
) -> Query:
    """A query reading some of ``relations``; ``udf`` names a FLOAT -> FLOAT UDF it may call.

    ``taken`` are names the query's CTEs must not use unless they shadow a relation on
    purpose (CTE names may shadow a relation the query does not otherwise read).
    """
    b = _Builder(draw, udf)
    available = list(relations)
    prefix = ""
    if draw(st.integers(0, 3)) == 0:
        b.use("cte")
        ctes: list[str] = []
        for _ in range(draw(st.integers(1, 2))):
            name = draw(names().filter(lambda n: n not in taken and n not in b.ctes))
            body, columns = _select(b, available)
            b.ctes.add(name)
            ctes.append(f"{b.ident(name)} AS ({body})")
            cte = Relation(name, columns)
            available = [rel for rel in available if rel.name != name] + [cte]
        prefix = "WITH " + ", ".join(ctes) + " "
        # The body must read at least one CTE most of the time.
        if draw(st.integers(0, 3)) > 0:
            available = [rel for rel in available if rel.name in b.ctes]
    body, columns = _select(b, available)
    sql = prefix + body + _order_limit(b, columns, "UNION ALL" in body)
    return Query(
        sql=sql,
        columns=columns,
        reads=frozenset(b.reads),
        udfs=frozenset(b.udfs),
        features=frozenset(b.features),
    )
