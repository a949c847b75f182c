"""The compile-time half of the contract sandbox: from source text to a checked code object.

``compile_contract(source, name=...)`` runs four stages; any failure is a
``ContractError(code="rejected")`` whose message starts with ``line N:``.

1. **Limits.** At most ``MAX_SOURCE_BYTES`` of UTF-8, ``MAX_AST_NODES`` syntax-tree nodes,
   ``MAX_AST_DEPTH`` levels of nesting (so the checkers, RestrictedPython and CPython's
   compiler all recurse boundedly).
2. **Our checks** (``_Checker``), stricter than RestrictedPython's and made for determinism:
   no imports, no ``_``-prefixed names or attributes, no ``global``/``nonlocal``, no
   introspection or I/O builtins (``FORBIDDEN_NAMES``), no floats (float literals and ``/``),
   no ``async``/``await``/``yield``/generator expressions, no ``try`` (nothing may catch
   ``OutOfFuel``), no ``with``, no ``assert`` (stripped under ``python -O``), no
   ``match``, no ``format``/``.format``, no f-string conversions or format specs, no sets,
   no ``*``/``**`` unpacking, no attribute assignment, ``is`` only against
   ``None``/``True``/``False``, lambdas without defaults. The module holds exactly one
   class (no bases, no keywords, no decorators), plain functions and constant
   assignments; the class body holds methods and constants; methods may be decorated with
   ``@call`` or ``@view`` only, and those take exactly ``(self, ctx, args)``. Module and
   class constants, and default values, are immutable literals, so nothing a call does
   can be seen by the next call. Annotations are accepted and then dropped.
3. **RestrictedPython** (``compile_restricted_exec`` with ``_Policy``, a subclass of its
   ``RestrictingNodeTransformer``) rewrites attribute access, subscripts, iteration,
   augmented assignment and unpacking into calls of ``_getattr_``, ``_getitem_``,
   ``_getiter_``, ``_write_``, ``_inplacevar_``... and adds its own checks.
4. **Instrumentation.** How the fuel hooks get in: RestrictedPython refuses every name
   starting with ``_`` in the code it checks, so the hooks cannot be written into the
   source or the tree *before* it runs. ``_Policy.visit_Module`` therefore lets
   RestrictedPython transform and check the whole module first and then, on the
   transformed tree and only if it found no error, runs ``_Instrumenter``, which wraps
   every call site in ``__civic_call__``, every binary operator in ``__civic_<op>__``, every
   comparison in ``__civic_cmp__``/``__civic_chain__``, every dict-display key in
   ``__civic_key__``, every f-string in ``__civic_fmt__``/``__civic_fstr__`` and puts
   ``__civic_tick__()`` at the top of every ``while`` body (``for`` loops and comprehensions
   are metered by ``_getiter_``). The code RestrictedPython then compiles is the
   instrumented tree. User code cannot name (so cannot call, rebind or inspect) any of
   these hooks, because both our check and RestrictedPython's refuse ``_`` names. The
   hooks themselves live in ``runtime.py``.

Every node the instrumentation adds carries the location of the node it wraps, so line
numbers in the compiled code are those of the contract's source.
"""

from __future__ import annotations

import ast
import re
import types
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NoReturn, cast

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

from civicledger.contracts.base import Contract
from civicledger.contracts.sandbox.runtime import (
    HOOK_CALL,
    HOOK_CHAIN,
    HOOK_CMP,
    HOOK_FMT,
    HOOK_FSTR,
    HOOK_KEY,
    HOOK_TICK,
    MAX_INT_BITS,
    RESTRICTED_HELPERS,
    SandboxedContract,
    binop_hook,
)
from civicledger.errors import ContractError

__all__ = [
    "CODE_REJECTED",
    "FORBIDDEN_NAMES",
    "MAX_AST_DEPTH",
    "MAX_AST_NODES",
    "MAX_SOURCE_BYTES",
    "CompiledContract",
    "compile_contract",
]

MAX_SOURCE_BYTES: Final = 64 * 1024
MAX_AST_NODES: Final = 20_000
MAX_AST_DEPTH: Final = 64
CODE_REJECTED: Final = "rejected"

_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")

#: Names a contract may not use at all (read, bind or define).
FORBIDDEN_NAMES: Final = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "open",
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        "vars",
        "dir",
        "globals",
        "locals",
        "type",
        "super",
        "object",
        "input",
        "print",
        "printed",
        "breakpoint",
        "memoryview",
        "bytearray",
        "id",
        "hash",
        "format",
        "set",
        "frozenset",
        "float",
        "complex",
        "iter",
        "next",
        "classmethod",
        "staticmethod",
        "property",
        "builtins",
        "help",
        "exit",
        "quit",
    }
)
#: Attributes refused by name, on top of every ``_``-prefixed one.
FORBIDDEN_ATTRIBUTES: Final = frozenset({"format", "format_map", "mro"}) | INSPECT_ATTRIBUTES

_DECORATORS = frozenset({"call", "view"})
_IS_OPERAND_TYPES = (bool, type(None))

_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mult",
    ast.FloorDiv: "floordiv",
    ast.Mod: "mod",
    ast.Pow: "pow",
    ast.LShift: "lshift",
    ast.RShift: "rshift",
    ast.BitOr: "bitor",
    ast.BitXor: "bitxor",
    ast.BitAnd: "bitand",
}
_CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "eq",
    ast.NotEq: "noteq",
    ast.Lt: "lt",
    ast.LtE: "lte",
    ast.Gt: "gt",
    ast.GtE: "gte",
    ast.Is: "is",
    ast.IsNot: "isnot",
    ast.In: "in",
    ast.NotIn: "notin",
}

#: Statements and expressions refused outright, with the reason shown to the author.
_REFUSED: dict[type[ast.AST], str] = {
    ast.Import: "import statements (the contract library is provided as globals)",
    ast.ImportFrom: "import statements (the contract library is provided as globals)",
    ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements",
    ast.Try: "try statements (errors cannot be caught in contracts)",
    ast.With: "with statements",
    ast.AsyncWith: "async with statements",
    ast.AsyncFor: "async for loops",
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "await",
    ast.Yield: "yield (generators)",
    ast.YieldFrom: "yield from (generators)",
    ast.GeneratorExp: "generator expressions (use a list comprehension)",
    ast.Assert: "assert (use require(condition, message))",
    ast.Match: "match statements",
    ast.Set: "set literals (set iteration order depends on hashing)",
    ast.SetComp: "set comprehensions (set iteration order depends on hashing)",
    ast.Starred: "* unpacking",
    ast.TryStar: "try statements (errors cannot be caught in contracts)",
}


def _reject(line: int | None, message: str) -> ContractError:
    where = f"line {line}: " if line else ""
    return ContractError(where + message, code=CODE_REJECTED)


def _line(node: ast.AST) -> int | None:
    line = getattr(node, "lineno", None)
    return line if isinstance(line, int) else None


def _is_constant(node: ast.expr) -> bool:
    """An immutable literal: None, bool, int, str, bytes, or a tuple of them."""
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool | int | str | bytes)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Invert):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) is int
    if isinstance(node, ast.Tuple):
        return all(_is_constant(e) for e in node.elts)
    return False


def _measure(tree: ast.AST) -> None:
    """Refuse trees with too many nodes or too deep (iteratively: no recursion here)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_AST_NODES:
            raise _reject(None, f"the contract has more than {MAX_AST_NODES} syntax nodes")
        if depth > MAX_AST_DEPTH:
            raise _reject(_line(node), f"code nests deeper than {MAX_AST_DEPTH} levels")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Checker(ast.NodeVisitor):
    """Our static rules (see the module docstring); raises on the first violation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.class_name: str | None = None
        self.methods: dict[str, str] = {}
        self._method_context = False

    def fail(self, node: ast.AST, what: str) -> NoReturn:
        raise _reject(_line(node), f"{what} is not allowed")

    def check_name(self, node: ast.AST, name: str | None) -> None:
        if name is None or name == "_":
            return
        if name.startswith("_"):
            self.fail(node, f"the name {name!r} (names may not start with '_')")
        if name in FORBIDDEN_NAMES:
            self.fail(node, f"the name {name!r}")

    # --- structure -----------------------------------------------------------------------

    def check_module(self, tree: ast.Module) -> None:
        seen: set[str] = set()
        for stmt in tree.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                if not isinstance(stmt.value.value, str):
                    self.fail(stmt, "a bare expression at the top level")
                continue
            if isinstance(stmt, ast.Pass):
                continue
            if isinstance(stmt, ast.ClassDef):
                self.check_class(stmt)
                bound = stmt.name
            elif isinstance(stmt, ast.FunctionDef):
                if stmt.decorator_list:
                    self.fail(stmt, "a decorator outside the contract class")
                self.visit(stmt)
                bound = stmt.name
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                bound = self.check_constant(stmt)
            else:
                reason = _REFUSED.get(type(stmt))
                self.fail(stmt, reason or f"{type(stmt).__name__} at the top level of a contract")
            if bound in seen:
                self.fail(stmt, f"defining {bound!r} twice")
            seen.add(bound)
        if self.class_name is None:
            raise _reject(None, "a contract must define exactly one class")

    def check_constant(self, stmt: ast.Assign | ast.AnnAssign) -> str:
        """``NAME = <immutable literal>`` at module or class level."""
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            self.fail(stmt, "an assignment to anything but one name at module or class level")
        if stmt.value is None or not _is_constant(stmt.value):
            self.fail(
                stmt,
                "a module or class level value that is not a literal"
                " (None, bool, int, str, bytes or a tuple of them)",
            )
        self.visit(stmt)
        return targets[0].id

    def check_class(self, node: ast.ClassDef) -> None:
        if self.class_name is not None:
            self.fail(node, "a second class (a contract defines exactly one class)")
        self.check_name(node, node.name)
        if node.bases or node.keywords:
            self.fail(node, "a base class or class keyword")
        if node.decorator_list:
            self.fail(node, "a class decorator")
        self.class_name = node.name
        seen: set[str] = set()
        for stmt in node.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                if not isinstance(stmt.value.value, str):
                    self.fail(stmt, "a bare expression in the class body")
                continue
            if isinstance(stmt, ast.Pass):
                continue
            if isinstance(stmt, ast.FunctionDef):
                self.check_method(stmt)
                bound = stmt.name
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                bound = self.check_constant(stmt)
                if bound == "name":
                    value = stmt.value
                    if not (isinstance(value, ast.Constant) and value.value == self.name):
                        self.fail(stmt, f"a class 'name' other than the contract's {self.name!r}")
            else:
                reason = _REFUSED.get(type(stmt))
                self.fail(stmt, reason or f"{type(stmt).__name__} in the contract class body")
            if bound in seen:
                self.fail(stmt, f"defining {bound!r} twice in the class")
            seen.add(bound)

    def check_method(self, node: ast.FunctionDef) -> None:
        kind: str | None = None
        if node.decorator_list:
            deco = node.decorator_list[0]
            if (
                len(node.decorator_list) != 1
                or not isinstance(deco, ast.Name)
                or deco.id not in _DECORATORS
            ):
                self.fail(node, "a decorator other than a single @call or @view")
            kind = deco.id
            a = node.args
            if (
                len(a.args) != 3
                or a.posonlyargs
                or a.vararg
                or a.kwonlyargs
                or a.kwarg
                or a.defaults
            ):
                self.fail(node, f"a @{kind} method not taking exactly (self, ctx, args)")
        elif not node.args.args and not node.args.posonlyargs:
            self.fail(node, "a method without self (there are no static methods)")
        self._method_context = True
        self.visit(node)
        if kind is not None:
            self.methods[node.name] = kind

    # --- nodes ---------------------------------------------------------------------------

    def generic_visit(self, node: ast.AST) -> None:
        reason = _REFUSED.get(type(node))
        if reason is not None:
            self.fail(node, reason)
        super().generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.fail(node, "a class other than the one top-level contract class")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        in_method = self._method_context
        self._method_context = False
        self.check_name(node, node.name)
        if node.decorator_list and not in_method:
            self.fail(node, "a decorator on a nested or module-level function")
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None and not _is_constant(default):
                self.fail(default, "a default value that is not a literal")
        for deco in node.decorator_list:
            self.visit(deco)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        if node.args.defaults or any(d is not None for d in node.args.kw_defaults):
            self.fail(node, "a lambda with default values")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self.check_name(node, node.arg)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.check_name(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"the attribute {node.attr!r} (attributes may not start with '_')")
        if node.attr in FORBIDDEN_ATTRIBUTES:
            self.fail(node, f"the attribute {node.attr!r}")
        if not isinstance(node.ctx, ast.Load):
            self.fail(node, "assigning or deleting an attribute")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is None:
            self.fail(node, "** unpacking")
        # A keyword is a label, not a name lookup: ``emit("X", id=1, type="a")`` is fine;
        # only the underscore rule applies (``__class__=`` is still refused).
        if node.arg is not None and node.arg.startswith("_"):
            self.fail(node, f"the keyword {node.arg!r} (names may not start with '_')")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        if any(k is None for k in node.keys):
            self.fail(node, "** unpacking")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, float | complex):
            self.fail(node, "a float literal (contracts have no floats)")
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            self.fail(node, f"an integer literal of more than {MAX_INT_BITS} bits")

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self.check_operator(node, node.op)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.check_operator(node, node.op)
        self.generic_visit(node)

    def check_operator(self, node: ast.AST, op: ast.operator) -> None:
        if isinstance(op, ast.Div):
            self.fail(node, "'/' (it makes floats; use '//')")
        if type(op) not in _BINOPS:
            self.fail(node, f"the operator {type(op).__name__}")

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if isinstance(op, ast.Is | ast.IsNot):
                pair = operands[i : i + 2]
                if not any(
                    isinstance(x, ast.Constant) and type(x.value) in _IS_OPERAND_TYPES for x in pair
                ):
                    self.fail(node, "'is' except with None, True or False (use ==)")
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        if node.conversion != -1 or node.format_spec is not None:
            self.fail(node, "an f-string conversion or format spec")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.fail(node, "async comprehensions")
        self.generic_visit(node)


class _StripAnnotations(ast.NodeTransformer):
    """Drop annotations (they would be evaluated, and name things contracts cannot see)."""

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        a = node.args
        for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg):
            if arg is not None:
                arg.annotation = None
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def _hook(name: str, node: ast.AST, *args: ast.expr) -> ast.Call:
    call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])
    return ast.copy_location(call, node)


class _Instrumenter(ast.NodeTransformer):
    """Route calls, operators, comparisons, keys, f-strings and loops through the hooks."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in RESTRICTED_HELPERS:
            return node  # a guard RestrictedPython inserted: not a contract call
        wrapped = _hook(HOOK_CALL, node, node.func, *node.args)
        wrapped.keywords = node.keywords
        return wrapped

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        return _hook(binop_hook(_BINOPS[type(node.op)]), node, node.left, node.right)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        ops = [ast.Constant(_CMPOPS[type(op)]) for op in node.ops]
        if len(ops) == 1:
            return _hook(HOOK_CMP, node, ops[0], node.left, node.comparators[0])
        no_args = ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        )
        thunks = [
            ast.copy_location(ast.Lambda(args=no_args, body=c), c) for c in node.comparators[1:]
        ]
        ops_tuple = ast.copy_location(ast.Tuple(elts=list(ops), ctx=ast.Load()), node)
        return _hook(HOOK_CHAIN, node, ops_tuple, node.left, node.comparators[0], *thunks)

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_hook(HOOK_TICK, node)), node))
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.keys = [None if k is None else _hook(HOOK_KEY, k, k) for k in node.keys]
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        self.generic_visit(node)
        node.key = _hook(HOOK_KEY, node.key, node.key)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        self.generic_visit(node)
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                part.value = _hook(HOOK_FMT, part.value, part.value)
        return _hook(HOOK_FSTR, node, node)


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's transformer, followed (when it found no error) by ours."""

    def visit_Module(self, node: ast.Module) -> ast.AST:
        result = super().visit_Module(node)
        if self.errors:
            return node
        module = cast(ast.Module, result)
        module = cast(ast.Module, _Instrumenter().visit(module))
        return ast.fix_missing_locations(module)


_RP_LINE = re.compile(r"^Line (\d+): (.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """A user contract that passed every check, ready to run."""

    name: str
    source: str
    code: types.CodeType = field(repr=False)
    class_name: str
    #: method name → "call" or "view"
    methods: Mapping[str, str]

    @property
    def filename(self) -> str:
        return _filename(self.name)

    def instantiate(self) -> Contract:
        """The contract, behind the same interface as the built-in ones."""
        cls = type(f"Sandboxed_{self.name}", (SandboxedContract,), {"name": self.name})
        return cast(
            Contract,
            cls(
                code=self.code,
                filename=self.filename,
                class_name=self.class_name,
                methods=self.methods,
            ),
        )


def _filename(name: str) -> str:
    return f"<contract {name}>"


def compile_contract(source: str, *, name: str) -> CompiledContract:
    """Check and compile a contract's source; raise ``ContractError(code="rejected")``."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise _reject(None, "contract names are 1 to 64 of a-z, 0-9 and _, starting with a letter")
    if not isinstance(source, str):
        raise _reject(None, "contract source must be text")
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:
        raise _reject(None, "contract source is not valid Unicode") from None
    if size > MAX_SOURCE_BYTES:
        raise _reject(None, f"contract source exceeds {MAX_SOURCE_BYTES} bytes")

    filename = _filename(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source, filename, "exec")
        except SyntaxError as exc:
            raise _reject(exc.lineno, f"syntax error: {exc.msg}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise _reject(None, f"cannot parse the contract: {type(exc).__name__}") from None
        _measure(tree)
        checker = _Checker(name)
        checker.check_module(tree)
        assert checker.class_name is not None
        tree = cast(ast.Module, _StripAnnotations().visit(tree))
        result = compile_restricted_exec(tree, filename, policy=_Policy)
    if result.errors:
        first = result.errors[0]
        match = _RP_LINE.match(first)
        if match:
            raise _reject(int(match.group(1)), match.group(2))
        raise _reject(None, first)
    assert result.code is not None
    return CompiledContract(
        name=name,
        source=source,
        code=result.code,
        class_name=checker.class_name,
        methods=dict(checker.methods),
    )
