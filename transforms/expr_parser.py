"""Recursive-descent parser of the condition language: tokens → a small syntax tree.

Grammar (lowest precedence first)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                          | "in" operand | "not" "in" operand | "matches" STRING ]
    operand    := STRING | NUMBER | "true" | "false" | HL7PATH | NAME | $VAR
                | NAME "(" [expr ("," expr)*] ")"          -- a function call
                | "(" expr ")" | "(" [expr ("," expr)* [","]] ")" | "[" ... "]"   -- a list

Nesting is limited (``MAX_DEPTH``) so hostile input cannot exhaust the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transforms.errors import ExpressionError
from transforms.expr_lexer import Token, tokenize

__all__ = ["BoolOp", "Call", "Compare", "ListLit", "Lit", "Node", "Not", "Ref", "parse"]

MAX_DEPTH = 64
_CMP = frozenset({"==", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Ref:
    kind: str  # "hl7" | "name" | "var"
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >= in "not in" matches
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]
    pos: int


Node = Lit | Ref | Call | Not | BoolOp | Compare | ListLit


def parse(text: str) -> Node:
    """Parse one expression; raises ``ExpressionError`` with the position of the problem."""
    if not text.strip():
        raise ExpressionError("empty expression", 0, text)
    return _Parser(text, tokenize(text)).parse()


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.tokens[self.i]
        return tok.kind == kind and (text is None or tok.text == text)

    def error(self, message: str, tok: Token | None = None) -> ExpressionError:
        return ExpressionError(message, (tok or self.tok).pos, self.text)

    def expect_op(self, op: str, opened: Token) -> None:
        if not self.at("op", op):
            raise self.error(f"expected {op!r} to close the {opened.text!r} at column "
                             f"{opened.pos + 1}, found {self.describe(self.tok)}")
        self.advance()

    @staticmethod
    def describe(tok: Token) -> str:
        return "the end of the expression" if tok.kind == "end" else repr(tok.text)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Node:
        node = self.expr()
        if not self.at("end"):
            raise self.error(f"unexpected {self.describe(self.tok)} after a complete expression"
                             " (missing 'and' / 'or'?)")
        return node

    def expr(self) -> Node:
        self.enter()
        items = [self.and_expr()]
        pos = self.tok.pos
        while self.at("kw", "or"):
            self.advance()
            items.append(self.and_expr())
        self.depth -= 1
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items), pos)

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        pos = self.tok.pos
        while self.at("kw", "and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items), pos)

    def not_expr(self) -> Node:
        if self.at("kw", "not"):
            tok = self.advance()
            self.enter()
            node = Not(self.not_expr(), tok.pos)
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        tok = self.tok
        if tok.kind == "op" and tok.text in _CMP:
            self.advance()
            return Compare(tok.text, left, self.operand(), tok.pos)
        if tok.kind == "kw" and tok.text == "in":
            self.advance()
            return Compare("in", left, self.operand(), tok.pos)
        if tok.kind == "kw" and tok.text == "not" and self.tokens[self.i + 1].text == "in":
            self.advance()
            self.advance()
            return Compare("not in", left, self.operand(), tok.pos)
        if tok.kind == "kw" and tok.text == "matches":
            self.advance()
            pattern = self.tok
            if pattern.kind != "str":
                raise self.error("'matches' needs a quoted regular expression, e.g. "
                                 "OBR-18 matches '^[A-Z0-9]+$'")
            self.advance()
            return Compare("matches", left, Lit(pattern.value, pattern.pos), tok.pos)
        return left

    def operand(self) -> Node:
        tok = self.tok
        if tok.kind == "str":
            self.advance()
            return Lit(tok.value, tok.pos)
        if tok.kind == "num":
            self.advance()
            return Lit(float(tok.text) if "." in tok.text else int(tok.text), tok.pos)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            self.advance()
            return Lit(tok.text == "true", tok.pos)
        if tok.kind in ("hl7", "var"):
            self.advance()
            return Ref(tok.kind, tok.text, tok.pos)
        if tok.kind == "name":
            self.advance()
            if self.at("op", "("):
                if "." in tok.text or "[" in tok.text:
                    raise self.error(f"{tok.text!r} is not a function name", tok)
                return Call(tok.text, self.items(self.advance(), ")"), tok.pos)
            return Ref("name", tok.text, tok.pos)
        if tok.kind == "op" and tok.text in ("(", "["):
            self.advance()
            close = ")" if tok.text == "(" else "]"
            if tok.text == "(" and not self.at("op", ")"):
                self.enter()
                first = self.expr()
                self.depth -= 1
                if self.at("op", ")"):
                    self.advance()
                    return first
                if not self.at("op", ","):
                    self.expect_op(")", tok)
                self.advance()
                rest = self.items(tok, ")", allow_trailing=True)
                return ListLit((first, *rest), tok.pos)
            return ListLit(self.items(tok, close, allow_trailing=True), tok.pos)
        if tok.kind == "kw":
            raise self.error(f"{tok.text!r} needs a value before it" if tok.text != "not"
                             else "'not' cannot be used here", tok)
        if tok.kind == "end":
            raise self.error("expression ends early: a value is missing", tok)
        raise self.error(f"unexpected {self.describe(tok)}: a value is expected here", tok)

    def items(self, opened: Token, close: str, allow_trailing: bool = False) -> tuple[Node, ...]:
        """Comma-separated expressions up to ``close`` (the opening token is consumed)."""
        out: list[Node] = []
        self.enter()
        while not self.at("op", close):
            out.append(self.expr())
            if self.at("op", ","):
                self.advance()
                if self.at("op", close) and not allow_trailing:
                    raise self.error("a value is expected after ','")
                continue
            if not self.at("op", close):
                raise self.error(f"expected ',' or {close!r}, found {self.describe(self.tok)}"
                                 f" (the {opened.text!r} is at column {opened.pos + 1})")
        self.advance()
        self.depth -= 1
        return tuple(out)
