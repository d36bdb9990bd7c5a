"""The customer search's statements (customers.search.run.Criteria), built with SQLAlchemy Core.

A search's statements take the shape of its query, so they are built for each search, with every
value a bind parameter, and compiled once for each shape and engine (a cache keyed by SQLAlchemy's
own cache key, which leaves values out). Every statement says `org_id = :org_id`, of the customers
and of every membership it reads, so that Citus routes it to the org's shard.

How each condition reads (the indexes: schema.py, migration 0006):
- text that ignores case compares lower(column) with lower(value), in SQL on both sides, so that
  the engine folds both alike (SQLite folds ASCII only); EXACT adds `column = value` to the
  lower-case equality, so that it is found by the same index;
- a prefix is a range, `>= prefix AND < prefix + U+10FFFF`, which holds for exactly the texts that
  start with the prefix under a code-point order: SQLite's BINARY order, and on PostgreSQL the
  pattern operators ~>=~ ~<~ of text_pattern_ops indexes, whatever the database's collation
  (SQLite's LIKE uses no index where its case folding is on; PostgreSQL's LIKE with a parameter
  none in a generic plan);
- mobiles and emails are stored in one form (E.164 digits, lower case) and read into it: compared
  as they are, on the org's unique indexes;
- a suffix is LIKE '%suffix' and reads every row of the org; so do custom fields (a JSON column),
  registered_till, type, points and slabs, which no index serves;
- points and slab are of "the" membership: the default programme's, else the customer's lowest.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Numeric,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import BindParameter, Select

from patron.customers.search.query import Attribute, Condition, Operator, Page
from patron.customers.search.run import Criteria
from patron.store.loyalty import MEMBERSHIP_COLUMNS
from patron.store.schema import customers, memberships
from patron.store.statements import PgStatement, Statement

# The last code point: every text that starts with a prefix sorts below prefix + TOP.
TOP = "\U0010ffff"
_POINTS = {Attribute.LOYALTY_POINTS: "loyalty_points", Attribute.LIFETIME_POINTS: "lifetime_points"}
# Stored in the one form a condition's values are read into (customers.search.query).
_AS_STORED = {Attribute.MOBILE: "mobile", Attribute.EMAIL: "email", Attribute.TYPE: "type", Attribute.USER_ID: "id"}
# Stored as sent: compared in lower case.
_FOLDED = {
    Attribute.FIRSTNAME: "firstname",
    Attribute.LASTNAME: "lastname",
    Attribute.EXTERNAL_ID: "external_id",
    Attribute.REGISTERED_TILL: "registered_till",
}
# A custom field's number as PostgreSQL reads it: what is stored as a number, and nothing else (a
# field declared a number after it held text), since a failed cast would fail the whole search.
_PG_NUMBER = r"'^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'"
_COMPILED_SHAPES = 512


class _Binds:
    """The statement's bind parameters, named in the order they are made, and their values."""

    def __init__(self, org_id: int) -> None:
        self.values: dict[str, Any] = {"org_id": org_id}
        self.org_id = bindparam("org_id", type_=BigInteger)

    def __call__(self, value: Any, type_: Any = String) -> BindParameter[Any]:
        name = f"v{len(self.values)}"
        self.values[name] = value
        return bindparam(name, type_=type_)


class _Engine:
    """What differs between the engines' SQL."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def prefix(self, text: ColumnElement[Any], low: ColumnElement[Any], high: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.postgres:
            return and_(text.op("~>=~", is_comparison=True)(low), text.op("~<~", is_comparison=True)(high))
        return and_(text >= low, text < high)

    def field_pairs(self) -> Any:
        """The custom fields' [name, value] pairs of the customer, as rows."""
        function = func.jsonb_array_elements if self.postgres else func.json_each
        return function(customers.c.custom_fields).table_valued("value").alias("field")

    def pair_item(self, pair: Any, index: int) -> ColumnElement[Any]:
        if self.postgres:
            return pair.op("->>", return_type=Text)(literal_column(str(index)))
        return func.json_extract(pair, literal_column(f"'$[{index}]'"), type_=Text)

    def number(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.postgres:
            return case((text.op("~", is_comparison=True)(literal_column(_PG_NUMBER)), cast(text, Numeric)))
        looks_like_one = and_(
            text.op("GLOB", is_comparison=True)(literal_column("'*[0-9]*'")),
            not_(text.op("GLOB", is_comparison=True)(literal_column("'*[^0-9.eE+-]*'"))),
        )
        return case((looks_like_one, cast(text, Float)))

    def ordered_text(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        """Text compared in code-point order (ISO dates and times sort as they run)."""
        return text.collate("C") if self.postgres else text

    def number_value(self, value: int | float) -> Any:
        return Decimal(str(value)) if self.postgres else value


def _like_suffix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return "%" + escaped


class _Builder:
    def __init__(self, criteria: Criteria, postgres: bool) -> None:
        self.criteria = criteria
        self.engine = _Engine(postgres)
        self.bind = _Binds(criteria.org_id)
        self.main = memberships.alias("main")
        self.uses_main = criteria.slabs is not None

    def where(self) -> list[ColumnElement[Any]]:
        criteria, bind = self.criteria, self.bind
        where: list[ColumnElement[Any]] = [customers.c.org_id == bind.org_id]
        where += [self.condition(condition) for condition in criteria.conditions]
        if criteria.any_of:
            where.append(or_(*(and_(*(self.condition(c) for c in conjunction)) for conjunction in criteria.any_of)))
        registered = criteria.registered
        if registered is not None and registered.since is not None:
            where.append(customers.c.registered_on >= bind(registered.since, customers.c.registered_on.type))
        if registered is not None and registered.before is not None:
            where.append(customers.c.registered_on < bind(registered.before, customers.c.registered_on.type))
        if criteria.tills is not None:
            where.append(customers.c.registered_till.in_([bind(till) for till in sorted(criteria.tills)]))
        if criteria.slabs is not None:
            main = self.main
            where.append(or_(*(
                and_(main.c.program_id == bind(program, BigInteger), main.c.slab_serial == bind(serial, BigInteger))
                for program, serial in sorted(criteria.slabs)
            )))
        return where

    def source(self) -> Any:
        """The customers, joined to "the" membership when a condition reads it."""
        if not self.uses_main:
            return customers
        main, held, bind = self.main, memberships.alias("held"), self.bind
        joined = and_(main.c.org_id == bind.org_id, main.c.customer_id == customers.c.id)
        if self.criteria.default_program is not None and not self.criteria.several_programs:
            # One programme: a customer's membership is of it (present cannot show another's).
            # A plain join, where finding each customer's first membership costs a subquery a row.
            return customers.outerjoin(main, and_(joined, main.c.program_id == bind(self.criteria.default_program, BigInteger)))
        order: list[Any] = [held.c.program_id]
        if self.criteria.default_program is not None:
            default = bind(self.criteria.default_program, BigInteger)
            order.insert(0, case((held.c.program_id == default, literal_column("0")), else_=literal_column("1")))
        first = (
            select(held.c.program_id)
            .where(held.c.org_id == bind.org_id, held.c.customer_id == customers.c.id)
            .order_by(*order)
            .limit(literal_column("1"))
            .scalar_subquery()
        )
        return customers.outerjoin(main, and_(joined, main.c.program_id == first))

    def condition(self, condition: Condition) -> ColumnElement[Any]:
        attribute = condition.attribute
        if isinstance(attribute, str):
            return self.custom_field(attribute, condition)
        if attribute in _POINTS:
            self.uses_main = True
            return self.numbers(func.coalesce(self.main.c[_POINTS[attribute]], literal_column("0")), condition, BigInteger)
        if attribute is Attribute.USER_ID:
            return self.numbers(customers.c.id, condition, BigInteger)
        if attribute in _AS_STORED:
            return self.as_stored(customers.c[_AS_STORED[attribute]], condition)
        if attribute in _FOLDED:
            return self.folded(customers.c[_FOLDED[attribute]], condition)
        raise ValueError(f"{attribute} is settled by customers.search.run, not searched as a column")

    def as_stored(self, column: ColumnElement[Any], condition: Condition) -> ColumnElement[Any]:
        bind, values, operator = self.bind, condition.values, condition.operator
        if operator is Operator.IN:
            return column.in_([bind(value) for value in values])
        if operator is Operator.STARTS:
            return self.engine.prefix(column, bind(values[0]), bind(f"{values[0]}{TOP}"))
        if operator is Operator.ENDS:
            return column.like(bind(_like_suffix(str(values[0]))), escape="\\")
        return column == bind(values[0])  # EQUALS, EXACT

    def folded(self, text: ColumnElement[Any], condition: Condition) -> ColumnElement[Any]:
        bind, values, operator = self.bind, condition.values, condition.operator
        lowered = func.lower(text)
        if operator is Operator.IN:
            return lowered.in_([func.lower(bind(value)) for value in values])
        if operator is Operator.STARTS:
            return self.engine.prefix(lowered, func.lower(bind(values[0])), func.lower(bind(f"{values[0]}{TOP}")))
        if operator is Operator.ENDS:
            return lowered.like(func.lower(bind(_like_suffix(str(values[0])))), escape="\\")
        value = bind(values[0])
        if operator is Operator.EXACT:
            # The lower-case equality finds the candidates by the index; the exact one decides.
            return and_(lowered == func.lower(value), text == value)
        return lowered == func.lower(value)  # EQUALS

    def numbers(self, number: ColumnElement[Any], condition: Condition, type_: Any) -> ColumnElement[Any]:
        bind, operator = self.bind, condition.operator
        values = [bind(value, type_) for value in condition.values]
        if operator is Operator.LESS:
            return number < values[0]
        if operator is Operator.GREATER:
            return number > values[0]
        if operator is Operator.RANGE:
            return and_(number >= values[0], number <= values[1])
        if operator is Operator.IN:
            return number.in_(values)
        return number == values[0]  # EQUALS, EXACT

    def custom_field(self, name: str, condition: Condition) -> ColumnElement[Any]:
        """A custom field, kept in customers.custom_fields as [name, value] pairs of text."""
        engine = self.engine
        pairs = engine.field_pairs()
        stored = engine.pair_item(pairs.c.value, 1)
        first = condition.values[0]
        if isinstance(first, str):
            test = self.folded(stored, condition)
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            converted = Condition(name, condition.operator, tuple(engine.number_value(v) for v in condition.values))  # type: ignore[arg-type]
            test = self.numbers(engine.number(stored), converted, Numeric if engine.postgres else Float)
        else:
            as_text = tuple(_stored_text(value) for value in condition.values)
            test = self.ordered(engine.ordered_text(stored), Condition(name, condition.operator, as_text))
        return exists().select_from(pairs).where(engine.pair_item(pairs.c.value, 0) == self.bind(name), test)

    def ordered(self, text: ColumnElement[Any], condition: Condition) -> ColumnElement[Any]:
        """A date or time field, stored as ISO text: compared as that text."""
        return self.numbers(text, condition, String)


def _stored_text(value: Any) -> str:
    """A date or local time as custom fields store them (customers.extra_fields)."""
    if isinstance(value, datetime):
        return value.isoformat(" ", "seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


class SearchStatements:
    """One search's two statements, compiled for an engine: how many customers match (counted up to
    `most` + 1 and no further), and one page of them (newest registration first), each customer's
    rows joined to its memberships."""

    def __init__(self, statement: type[Statement], criteria: Criteria, page: Page, columns: list[str], most: int) -> None:
        builder = _Builder(criteria, postgres=issubclass(statement, PgStatement))
        where = builder.where()
        source = builder.source()
        bind = builder.bind
        matching: Select[int] = select(literal_column("1")).select_from(source).where(*where)
        count = select(func.count()).select_from(matching.limit(bindparam("most", type_=BigInteger)).subquery("matching"))
        # The page's ids first, ordered by the (org_id, registered_on, id) index where the plan
        # walks it; then their rows and memberships.
        chosen = (
            select(customers.c.id, customers.c.registered_on)
            .select_from(source)
            .where(*where)
            .order_by(customers.c.registered_on.desc(), customers.c.id.desc())
            .limit(bindparam("limit", type_=BigInteger))
            .offset(bindparam("offset", type_=BigInteger))
            .subquery("page")
        )
        rows = (
            select(
                *(customers.c[name] for name in columns),
                *(memberships.c[name].label(f"m_{name}") for name in MEMBERSHIP_COLUMNS),
            )
            .select_from(
                chosen.join(customers, and_(customers.c.org_id == bind.org_id, customers.c.id == chosen.c.id)).outerjoin(
                    memberships, and_(memberships.c.org_id == bind.org_id, memberships.c.customer_id == chosen.c.id)
                )
            )
            .order_by(chosen.c.registered_on.desc(), chosen.c.id.desc(), memberships.c.program_id)
        )
        self.count = _compiled(statement, count)
        self.rows = _compiled(statement, rows)
        self.values = {**bind.values, "most": most + 1}
        self.page_values = {**bind.values, "limit": page.rows, "offset": page.start}

    async def run(self, conn: Any, page: Page) -> tuple[int, list[Any]]:
        ((counted,),) = [tuple(row.values()) for row in await self.count.fetch(conn, self.values)]
        if page.rows == 0 or counted <= page.start:
            return counted, []
        return counted, await self.rows.fetch(conn, self.page_values)


_compiled_shapes: OrderedDict[Any, Statement] = OrderedDict()


def _compiled(statement: type[Statement], built: Select[Any]) -> Statement:
    """The statement compiled for the engine, once for each shape (values left out of the key)."""
    key = built._generate_cache_key()
    if key is None:
        return statement(built)
    shape = (statement, key.key)
    compiled = _compiled_shapes.get(shape)
    if compiled is None:
        compiled = _compiled_shapes[shape] = statement(built)
        if len(_compiled_shapes) > _COMPILED_SHAPES:
            _compiled_shapes.popitem(last=False)
    else:
        _compiled_shapes.move_to_end(shape)
    return compiled

