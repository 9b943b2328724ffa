"""Parser of Falco's condition language: text -> :mod:`~syswarden.core.rules.ast` tree.

Grammar (precedence ``not`` > ``and`` > ``or``; keywords and operators are case sensitive)::

    condition   := or_expr EOF
    or_expr     := and_expr ( "or" and_expr )*
    and_expr    := not_expr ( "and" not_expr )*
    not_expr    := "not" not_expr | primary
    primary     := "(" or_expr ")" | check | MACRO
    check       := operand UNARY_OP
                 | operand LIST_OP list_value
                 | operand MOD_OP MODIFIER list_value
                 | operand OP value
    operand     := FIELD [ "[" ARG "]" ] | TRANSFORMER "(" operand ")"
                 | CALL "(" [ arg ( "," arg )* ] ")" [ "[" ARG "]" ]
    arg         := "(" [ item ( "," item )* ] ")" | item
    item        := QUOTED | NUMBER | operand
    list_value  := "(" [ item ( "," item )* ] ")" | LIST_NAME
    item        := QUOTED | BARE                  (a bare item naming a list is expanded)
    value       := QUOTED | BARE | rhs_field
    rhs_field   := "val(" FIELD ")" | TRANSFORMER "(" operand ")"
    TRANSFORMER := tolower | toupper | b64 | basename | len
    CALL        := join | concat | getopt
    UNARY_OP, LIST_OP, OP := the operators of :data:`~.operators.OPERATORS` of each kind
                 (UNARY, LIST, VALUE), listed in docs/operators.md
    MOD_OP      := an OP declared with ``modifiers`` (``=``, ``startswith``, ``glob``...)
    MODIFIER    := oneof | anyof | allof

One function per grammar rule; every error is a :class:`RuleError` naming the column, with the
condition and a caret under the fault.
"""

from __future__ import annotations

import dataclasses

from ..errors import Location, RuleError
from . import ast
from .lexer import CALLS, Lexer, TokenType
from .operators import OPERATORS, Kind

__all__ = ["parse", "parse_operand", "RuleError"]


def parse(text: str, location: Location | None = None) -> ast.Node:
    """Parse a condition.  Raises :class:`RuleError` with the column of the fault."""
    if not isinstance(text, str):
        raise RuleError(f"a condition must be a string, not {type(text).__name__}", location)
    lx = Lexer(text, location)
    if lx.at_end():
        raise lx.error("empty condition")
    try:
        node = _or_expr(lx)
    except RecursionError:
        raise lx.error("condition too deeply nested", 0) from None
    if not lx.at_end():
        raise lx.error(f"unexpected {lx.text[lx.pos:lx.pos + 12]!r} after a complete "
                       "expression, expected 'and', 'or' or ')'")
    return node


def parse_operand(text: str, pos: int = 0, location: Location | None = None
                  ) -> tuple[ast.FieldRef, int]:
    """A field or a transformer call at ``pos`` of ``text`` (an output's ``%`` token), and
    the offset just after it; whatever follows is not read.  Raises :class:`RuleError`."""
    lx = Lexer(text, location)
    lx.pos = pos
    return _operand(lx), lx.pos


def _or_expr(lx: Lexer) -> ast.Node:
    return _chain(lx, TokenType.OR, _and_expr, ast.Or)


def _and_expr(lx: Lexer) -> ast.Node:
    return _chain(lx, TokenType.AND, _not_expr, ast.And)


def _chain(lx: Lexer, op: TokenType, operand, node_type) -> ast.Node:
    """``operand ( op operand )*``: one node with every operand as a child."""
    lx.skip_ws()
    start = lx.pos
    children = [operand(lx)]
    while True:
        save = lx.pos
        tok = lx.bool_op()
        if tok is None:
            break
        if tok.type is not op:
            lx.pos = save
            break
        children.append(operand(lx))
    return children[0] if len(children) == 1 else node_type(tuple(children), start)


def _not_expr(lx: Lexer) -> ast.Node:
    tok = lx.not_kw()
    if tok is not None:
        return ast.Not(_not_expr(lx), tok.pos)
    return _primary(lx)


def _primary(lx: Lexer) -> ast.Node:
    tok = lx.punct("(")
    if tok is not None:
        node = _or_expr(lx)
        if lx.punct(")") is None:
            if lx.at_end():
                raise lx.error(f"unexpected end of condition, expected ')' to close the "
                               f"'(' opened at column {tok.pos + 1}")
            raise lx.error(f"expected ')' to close the '(' opened at column {tok.pos + 1}, "
                           "or 'and'/'or'")
        return node
    lx.skip_ws()
    if lx.pos < len(lx.text) and lx.text[lx.pos] == ")":
        raise lx.error("unexpected ')', expected a field, a macro or '('")
    save = lx.pos
    tok = lx.operand()
    if tok.type is TokenType.IDENT:
        if tok.value in ("and", "or"):
            raise lx.error(f"unexpected '{tok.value}', expected a field, a macro or '('",
                           tok.pos)
        return ast.MacroRef(tok.value, tok.pos)
    lx.pos = save
    field = _operand(lx)
    return _check(lx, field)


def _operand(lx: Lexer) -> ast.FieldRef:
    tok = lx.operand()
    if tok.type is TokenType.FIELD:
        return ast.FieldRef(tok.value, tok.arg, tok.pos)
    if tok.type is TokenType.TRANSFORMER:
        if tok.value == "val":
            raise lx.error("val() is only allowed on the right side of a comparison", tok.pos)
        if tok.value in CALLS:
            return _call(lx, tok.value, tok.pos)
        inner = _operand(lx)
        if lx.punct(")") is None:
            raise lx.error(f"expected ')' to close {tok.value}(")
        return _wrap(inner, tok.value, tok.pos)
    raise lx.error(f"expected a field, found {tok.value!r}", tok.pos)


def _wrap(inner: ast.FieldRef, transformer: str, pos: int) -> ast.FieldRef:
    return dataclasses.replace(inner, pos=pos, transformers=(transformer,) + inner.transformers)


def _call(lx: Lexer, name: str, pos: int) -> ast.FieldRef:
    """After ``join(``: the arguments, ``)``, and an optional ``[key]``."""
    args: list[ast.FieldRef | ast.Literal | ast.ArgList] = []
    if lx.punct(")") is None:
        while True:
            args.append(_call_arg(lx, name, True))
            if lx.punct(",") is not None:
                continue
            if lx.punct(")") is not None:
                break
            raise lx.error(f"expected ',' or ')' in the arguments of {name}(")
    key = lx.field_arg()
    return ast.FieldRef(name, key, pos, (), ast.Call(name, tuple(args), pos))


def _call_arg(lx: Lexer, name: str, list_ok: bool) -> ast.FieldRef | ast.Literal | ast.ArgList:
    """A transformer's argument: a quoted string, a number, a field, a transformer, or (not
    inside a list) a list of those."""
    lx.skip_ws()
    start = lx.pos
    if list_ok and lx.punct("(") is not None:
        items: list[ast.FieldRef | ast.Literal] = []
        if lx.punct(")") is None:
            while True:
                item = _call_arg(lx, name, False)
                assert not isinstance(item, ast.ArgList)
                items.append(item)
                if lx.punct(",") is not None:
                    continue
                if lx.punct(")") is not None:
                    break
                raise lx.error(f"expected ',' or ')' in a list argument of {name}(")
        return ast.ArgList(tuple(items), start)
    tok = lx.call_literal()
    if tok is not None:
        return ast.Literal(tok.value, tok.pos, tok.type is TokenType.STRING)
    return _operand(lx)


def _check(lx: Lexer, field: ast.FieldRef) -> ast.Check:
    op = lx.operator()
    kind = OPERATORS[op.value].kind
    if kind is Kind.UNARY:
        return ast.Check(field, op.value, None, field.pos)
    if kind is Kind.LIST:
        return ast.Check(field, op.value, _list_value(lx), field.pos)
    if OPERATORS[op.value].modifiers:
        mod = lx.modifier()
        if mod is not None:
            return ast.Check(field, op.value, _list_value(lx), field.pos, mod.value)
    return ast.Check(field, op.value, _value(lx), field.pos)


def _list_value(lx: Lexer) -> ast.ListLit:
    lx.skip_ws()
    start = lx.pos
    if lx.punct("(") is None:
        tok = lx.value()
        if tok.type is TokenType.WORD:
            return ast.ListLit((ast.Literal(tok.value, tok.pos),), tok.pos)
        raise lx.error("expected '(' and a list of values, or a list name", tok.pos)
    items: list[ast.Literal] = []
    if lx.punct(")") is not None:
        return ast.ListLit((), start)
    while True:
        tok = lx.value()
        if tok.type is TokenType.TRANSFORMER:
            raise lx.error("expected a list item", tok.pos)
        items.append(ast.Literal(tok.value, tok.pos, tok.type is TokenType.STRING))
        if lx.punct(",") is not None:
            continue
        if lx.punct(")") is not None:
            return ast.ListLit(tuple(items), start)
        if lx.at_end():
            raise lx.error(f"unexpected end of condition, expected ',' or ')' to close the "
                           f"list opened at column {start + 1}")
        raise lx.error("expected ',' or ')' in a list")


def _value(lx: Lexer) -> ast.Literal | ast.FieldValue:
    tok = lx.value()
    if tok.type is TokenType.TRANSFORMER:
        return ast.FieldValue(_rhs_field(lx, tok.value), tok.pos)
    return ast.Literal(tok.value, tok.pos, tok.type is TokenType.STRING)


def _rhs_field(lx: Lexer, transformer: str) -> ast.FieldRef:
    """After ``val(`` or ``tolower(`` on the right side: ``val(`` takes a field (not a
    transformer, as in Falco), a transformer a field or another transformer."""
    if transformer == "val":
        tok = lx.operand()
        if tok.type is not TokenType.FIELD:
            raise lx.error("val() takes a field", tok.pos)
        field = ast.FieldRef(tok.value, tok.arg, tok.pos)
    elif transformer in CALLS:
        return _call(lx, transformer, lx.pos)
    else:
        field = _operand(lx)
    if lx.punct(")") is None:
        raise lx.error(f"expected ')' to close {transformer}(")
    if transformer == "val":
        return field
    return _wrap(field, transformer, field.pos)
