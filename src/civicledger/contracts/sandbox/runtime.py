"""The run-time half of the contract sandbox: guards, fuel hooks and the contract adapter.

``compiler.py`` turns a contract's source into a code object in which every operation that
could be expensive, unbounded or an escape route has been routed through a function this
module supplies. Each call of a user contract gets a fresh ``Runtime`` bound to the
transaction's ``FuelMeter`` (``ctx.fuel``) and a fresh namespace holding those functions; the
module code is executed in that namespace, the contract class is taken from it and the
method is called. Nothing outlives the call, so calls cannot share state except through
``ctx`` (and running several calls in parallel threads is safe).

Hooks the compiler injects (all named ``__civic_*__`` so user code, which may not name
anything starting with ``_``, can neither call nor shadow them):

* ``__civic_call__(f, *args, **kw)`` wraps every call site: charges ``FUEL_CALL`` and counts
  the call depth (at most ``MAX_CALL_DEPTH``), so recursion stops deterministically long
  before Python's own recursion limit, wherever the executor happens to run.
* ``__civic_tick__()`` is the first statement of every ``while`` body: ``FUEL_ITERATION``.
* ``__civic_<op>__(a, b)`` replaces every binary operator: integers may not exceed
  ``MAX_INT_BITS`` (``**`` and ``<<`` are refused *before* computing), sequences built by
  ``+`` and ``*`` may not exceed ``MAX_SEQUENCE`` items and cost one fuel per item, ``%`` on
  strings (printf formatting) is refused.
* ``__civic_cmp__`` / ``__civic_chain__`` replace comparisons: containers are walked first
  (``weigh``: nesting at most ``MAX_VALUE_DEPTH``, one fuel per node), so a comparison never
  recurses deeper than that in C and always costs fuel in proportion to its work.
* ``__civic_key__`` checks every dict-display key: keys must be ``str``, ``int``, ``bytes``,
  ``bool`` or ``None`` (hashing a deeply nested tuple crashes CPython).
* ``__civic_fmt__`` / ``__civic_fstr__`` guard f-strings: scalars only, bounded result.

RestrictedPython's own hooks are supplied too: ``_getattr_`` (a whitelist per type; every
method that can allocate or scan is wrapped and metered; nothing starting with ``_``),
``_getitem_`` (slices charged by size), ``_write_`` (item assignment only on lists and
dicts, through a checking proxy), ``_getiter_`` (one ``FUEL_ITERATION`` per item of every
``for`` loop, comprehension and unpacking), ``_inplacevar_`` (``+=`` and friends, same rules
as the binary operators) and the sequence-unpacking guards.

Builtins are a whitelist: ``len range min max abs sorted enumerate zip list dict tuple str
int bool isinstance all any reversed``. Those that consume an iterable in C (``list``,
``tuple``, ``dict``, ``sorted``, ``min``, ``max``, ``all``, ``any``) are wrapped so every
item is charged and bounded; ``str`` and ``int`` accept scalars only. The library adds
``call``, ``view``, ``require``, ``sha256`` and ``ContractError``.

Fuel schedule, on top of the state, event and base costs of ``contracts/base.py``:

* ``FUEL_ENTRY`` = 200 per contract call (fresh namespace, class creation);
* ``FUEL_CALL`` = 20 per function call made by contract code;
* ``FUEL_ITERATION`` = 5 per loop iteration, comprehension item or unpacked item;
* ``FUEL_OP`` = 1 per operator, comparison, subscript or attribute access;
* 1 per item (element, character, byte) allocated by an operator, a slice, a builtin or
  a method, and at most ``MAX_ALLOCATED`` items per call in all;
* 1 per 16 characters/bytes scanned by comparisons and string searches;
* 1 per value node walked before a comparison, a sort, ``in`` on a list,
  ``ctx.set``/``ctx.emit`` or returning a result;
* integers: 1 + bits/64 per result; ``*`` adds words(a)·words(b)/16, ``**`` adds
  words(result)²/16 per exponent bit;
* sorting, ``min``, ``max``: every item (or key) weighed, then n·log2(n)·(heaviest) or
  n·(heaviest);
* ``sha256``: 60 + 1 per 8 bytes.

Other limits: dict keys are scalars (``str``, ``int``, ``bytes``, ``bool``, ``None``); a
call's result encodes to at most 16 KiB; error messages are cut at 500 characters and
error codes at 64; event names at 64 characters.

Errors: a ``ContractError`` raised by the contract or by a guard, and any Python exception
(``TypeError``, ``ZeroDivisionError``, ...), leave the call as a ``ContractError`` whose
message starts with ``line N:``, N being the line in the contract's source. Python's own
exception messages are left out (only the exception's type name is kept): they are not
guaranteed to be the same across Python versions, and receipts must be identical on every
node. ``OutOfFuel`` stays ``OutOfFuel`` so the executor records ``fuel_used = limit``.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import operator
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NoReturn, cast

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from civicledger.contracts.base import (
    MAX_KEY_LENGTH,
    MAX_VALUE_SIZE,
    Args,
    Context,
    Contract,
    FuelMeter,
    ViewContext,
    call,
    view,
)
from civicledger.encoding import Value, encode
from civicledger.errors import ContractError, LedgerError, OutOfFuel
from civicledger.types import ADDRESS_SIZE

__all__ = [
    "BINARY_OPERATORS",
    "CODE_CRASHED",
    "CODE_FORBIDDEN",
    "CODE_LIMIT",
    "COMPARE_OPERATORS",
    "FUEL_CALL",
    "FUEL_ENTRY",
    "FUEL_ITERATION",
    "FUEL_OP",
    "HOOK_CALL",
    "HOOK_CHAIN",
    "HOOK_CMP",
    "HOOK_FMT",
    "HOOK_FSTR",
    "HOOK_KEY",
    "HOOK_TICK",
    "LIBRARY_NAMES",
    "MAX_ALLOCATED",
    "MAX_CALL_DEPTH",
    "MAX_INT_BITS",
    "MAX_SEQUENCE",
    "MAX_VALUE_DEPTH",
    "RESTRICTED_HELPERS",
    "SAFE_BUILTIN_NAMES",
    "Runtime",
    "SandboxedContract",
    "binop_hook",
]

# --- limits and fuel ---------------------------------------------------------------------

#: Integers produced by contract code carry at most this many bits.
MAX_INT_BITS: Final = 4096
#: A list, tuple, dict, str or bytes built by contract code holds at most this many
#: items (characters, bytes).
MAX_SEQUENCE: Final = 1 << 20
#: Nested contract function calls (recursion included).
MAX_CALL_DEPTH: Final = 64
#: Containers compared, sorted, stored, emitted or returned nest at most this deep.
MAX_VALUE_DEPTH: Final = 32
#: Items (elements, characters, bytes) one call may allocate in bulk, all together:
#: bounds the memory a call can hold whatever its fuel limit.
MAX_ALLOCATED: Final = 16 * MAX_SEQUENCE
#: Encoded size of a call's result (it goes into the receipt); same bound as a state value.
MAX_RESULT_SIZE: Final = MAX_VALUE_SIZE
#: Longest error code a contract may raise.
MAX_ERROR_CODE: Final = 64
#: Longest error message a contract may leave in a receipt.
MAX_ERROR_MESSAGE: Final = 500
#: Longest event name.
MAX_EVENT_NAME: Final = 64
#: ``int.to_bytes`` / ``int.from_bytes`` lengths.
MAX_INT_BYTES: Final = MAX_INT_BITS // 8
#: ``str.strip(chars)`` and friends: at most this many characters in ``chars``.
MAX_STRIP_CHARS: Final = 64

FUEL_ENTRY: Final = 200
FUEL_CALL: Final = 20
FUEL_ITERATION: Final = 5
FUEL_OP: Final = 1
FUEL_SHA256: Final = 60
#: Characters/bytes scanned per unit of fuel.
SCAN: Final = 16

# --- error codes -------------------------------------------------------------------------

#: A size, depth or magnitude limit was hit.
CODE_LIMIT: Final = "limit_exceeded"
#: The operation is not available to contracts.
CODE_FORBIDDEN: Final = "forbidden"
#: A Python error (type error, division by zero, missing key, ...) stopped the contract.
CODE_CRASHED: Final = "contract_crashed"

# --- the hook names the compiler injects ---------------------------------------------------

HOOK_CALL: Final = "__civic_call__"
HOOK_TICK: Final = "__civic_tick__"
HOOK_CMP: Final = "__civic_cmp__"
HOOK_CHAIN: Final = "__civic_chain__"
HOOK_KEY: Final = "__civic_key__"
HOOK_FMT: Final = "__civic_fmt__"
HOOK_FSTR: Final = "__civic_fstr__"

#: Binary operators contract code may use (``/`` and ``@`` are rejected by the compiler).
BINARY_OPERATORS: Final = (
    "add",
    "sub",
    "mult",
    "floordiv",
    "mod",
    "pow",
    "lshift",
    "rshift",
    "bitor",
    "bitxor",
    "bitand",
)
#: Comparison operators, by the name the compiler passes to ``__civic_cmp__``.
COMPARE_OPERATORS: Final = ("eq", "noteq", "lt", "lte", "gt", "gte", "is", "isnot", "in", "notin")

#: Names RestrictedPython's transformer generates; the compiler does not meter these calls.
RESTRICTED_HELPERS: Final = frozenset(
    {
        "_getattr_",
        "_getitem_",
        "_getiter_",
        "_write_",
        "_inplacevar_",
        "_unpack_sequence_",
        "_iter_unpack_sequence_",
        "_apply_",
        "_print_",
        "_print",
    }
)

SAFE_BUILTIN_NAMES: Final = frozenset(
    {
        "len",
        "range",
        "min",
        "max",
        "abs",
        "sorted",
        "enumerate",
        "zip",
        "list",
        "dict",
        "tuple",
        "str",
        "int",
        "bool",
        "isinstance",
        "all",
        "any",
        "reversed",
    }
)
#: The deterministic library every contract sees.
LIBRARY_NAMES: Final = frozenset({"call", "view", "require", "sha256", "ContractError"})


def binop_hook(name: str) -> str:
    """The global name of the guard for binary operator ``name`` (one of BINARY_OPERATORS)."""
    return f"__civic_{name}__"


_INPLACE = {
    "+=": "add",
    "-=": "sub",
    "*=": "mult",
    "//=": "floordiv",
    "%=": "mod",
    "**=": "pow",
    "<<=": "lshift",
    ">>=": "rshift",
    "|=": "bitor",
    "^=": "bitxor",
    "&=": "bitand",
}
_SYMBOL = {
    "add": "+",
    "sub": "-",
    "mult": "*",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "lshift": "<<",
    "rshift": ">>",
    "bitor": "|",
    "bitxor": "^",
    "bitand": "&",
}
_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "noteq": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}

_NONE = type(None)
_INTS: Final = frozenset({int, bool})
_SCALARS: Final = frozenset({int, bool, str, bytes, _NONE})
_TEXT: Final = frozenset({str, bytes})
_SEQS: Final = frozenset({str, bytes, list, tuple})
_KEYS_VIEW: Final[type] = type({}.keys())
_VIEWS: Final = frozenset({_KEYS_VIEW, type({}.values()), type({}.items())})
_SIZED: Final = frozenset({str, bytes, list, tuple, dict, range}) | _VIEWS
_COMPARABLE: Final = _SCALARS | frozenset({list, tuple, dict, range})
_MISSING: Any = object()


def _limit(message: str) -> ContractError:
    return ContractError(message, code=CODE_LIMIT)


def _forbidden(message: str) -> ContractError:
    return ContractError(message, code=CODE_FORBIDDEN)


def _crash(message: str) -> ContractError:
    return ContractError(message, code=CODE_CRASHED)


def _tname(value: Any) -> str:
    return type(value).__name__


def _need_str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise _crash(f"{what} must be a str, not {_tname(value)}")
    return value


class SafeType:
    """A builtin type as contracts see it: callable (metered) and usable with isinstance."""

    __slots__ = ("construct", "real")

    def __init__(self, real: type, construct: Callable[..., Any]) -> None:
        self.real = real
        self.construct = construct

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.construct(*args, **kwargs)


class _WriteProxy:
    """What ``_write_`` returns for a list or dict: item assignment through the guards."""

    __slots__ = ("rt", "target")

    def __init__(self, rt: Runtime, target: Any) -> None:
        self.rt = rt
        self.target = target

    def __setitem__(self, key: Any, value: Any) -> None:
        self.rt.setitem(self.target, key, value)

    def __delitem__(self, key: Any) -> None:
        self.rt.delitem(self.target, key)


class Runtime:
    """Guards and fuel hooks for one contract call, charging ``fuel``."""

    __slots__ = ("allocated", "depth", "fuel", "user_class")

    def __init__(self, fuel: FuelMeter) -> None:
        self.fuel = fuel
        self.depth = 0
        self.allocated = 0
        self.user_class: type | None = None

    # --- namespace ---------------------------------------------------------------------

    def namespace(self) -> dict[str, Any]:
        """Globals for one execution of a contract's module code."""
        safe_builtins: dict[str, Any] = {
            "__build_class__": builtins.__build_class__,
            "len": len,
            "range": range,
            "abs": abs,
            "bool": bool,
            "enumerate": enumerate,
            "zip": zip,
            "reversed": reversed,
            "min": self.b_min,
            "max": self.b_max,
            "sorted": self.b_sorted,
            "all": self.b_all,
            "any": self.b_any,
            "isinstance": self.b_isinstance,
            "list": SafeType(list, self.b_list),
            "tuple": SafeType(tuple, self.b_tuple),
            "dict": SafeType(dict, self.b_dict),
            "str": SafeType(str, self.b_str),
            "int": SafeType(int, self.b_int),
        }
        g: dict[str, Any] = {
            "__builtins__": safe_builtins,
            "__name__": "civic_contract",
            "__metaclass__": type,
            # RestrictedPython's hooks
            "_getattr_": self.getattr_,
            "_getitem_": self.getitem,
            "_getiter_": self.getiter,
            "_write_": self.write,
            "_inplacevar_": self.inplacevar,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            # ours
            HOOK_CALL: self.call_,
            HOOK_TICK: self.tick,
            HOOK_CMP: self.cmp,
            HOOK_CHAIN: self.chain,
            HOOK_KEY: self.key,
            HOOK_FMT: self.fmt,
            HOOK_FSTR: self.fstr,
            # the library
            "call": call,
            "view": view,
            "require": self.require,
            "sha256": self.sha256,
            "ContractError": ContractError,
        }
        for name in BINARY_OPERATORS:
            g[binop_hook(name)] = getattr(self, f"op_{name}")
        return g

    # --- accounting --------------------------------------------------------------------

    def alloc(self, n: int, what: str = "a sequence") -> None:
        """Charge for, and bound, a new sequence of ``n`` items."""
        if n > MAX_SEQUENCE:
            raise _limit(f"{what} of {n} items exceeds the limit of {MAX_SEQUENCE}")
        n = max(n, 0)
        self.allocated += n
        if self.allocated > MAX_ALLOCATED:
            raise _limit(f"a call may allocate at most {MAX_ALLOCATED} items in all")
        self.fuel.charge(FUEL_OP + n)

    def weigh(self, value: Any) -> int:
        """Walk ``value``, charging one fuel per node (plus scanned sizes); return the total.

        Refuses containers nested deeper than ``MAX_VALUE_DEPTH`` (cycles included), so
        whatever CPython does with the value next (compare, sort, encode) recurses boundedly.
        """
        charge = self.fuel.charge
        charge(1)
        total = 1
        stack: list[tuple[Any, int]] = [(value, 0)]
        while stack:
            item, depth = stack.pop()
            t = type(item)
            if t is list or t is tuple or t is dict:
                if depth >= MAX_VALUE_DEPTH:
                    raise _limit(f"values may nest at most {MAX_VALUE_DEPTH} levels deep")
                n = len(item) * (2 if t is dict else 1)
                charge(n)
                total += n
                if t is dict:
                    for k, v in item.items():
                        stack.append((k, depth + 1))
                        stack.append((v, depth + 1))
                else:
                    stack.extend([(x, depth + 1) for x in item])
            elif t is str or t is bytes:
                extra = len(item) // SCAN
                if extra:
                    charge(extra)
                    total += extra
            elif t is int:
                extra = item.bit_length() // 256
                if extra:
                    charge(extra)
                    total += extra
            elif t in _VIEWS:
                charge(len(item))
                total += len(item)
        return total

    def take(self, obj: Any) -> list[Any]:
        """Materialise an iterable as a new list, charging and bounding every item."""
        t = type(obj)
        if t in _SIZED:
            try:
                n = len(obj)
            except OverflowError:
                raise _limit(f"a sequence exceeds the limit of {MAX_SEQUENCE} items") from None
            self.alloc(n)
            return list(obj)
        out: list[Any] = []
        for item in self.getiter(obj):
            out.append(item)
            if len(out) > MAX_SEQUENCE:
                raise _limit(f"a sequence exceeds the limit of {MAX_SEQUENCE} items")
        return out

    def int_result(self, value: int) -> int:
        bits = value.bit_length()
        if bits > MAX_INT_BITS:
            raise _limit(f"integer results are limited to {MAX_INT_BITS} bits")
        self.fuel.charge(FUEL_OP + bits // 64)
        return value

    def key(self, k: Any) -> Any:
        """Check a dict key (the ``__civic_key__`` hook)."""
        t = type(k)
        if t not in _SCALARS:
            raise _forbidden(f"dict keys must be str, int, bytes, bool or None, not {t.__name__}")
        if t is str or t is bytes:
            self.fuel.charge(FUEL_OP + len(k) // SCAN)
        return k

    # --- injected hooks ----------------------------------------------------------------

    def call_(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call site in contract code: fuel and a deterministic depth bound."""
        self.fuel.charge(FUEL_CALL)
        if self.depth >= MAX_CALL_DEPTH:
            raise _limit(f"calls may nest at most {MAX_CALL_DEPTH} deep")
        self.depth += 1
        try:
            return fn(*args, **kwargs)
        finally:
            self.depth -= 1

    def tick(self) -> None:
        """One ``while`` iteration."""
        self.fuel.charge(FUEL_ITERATION)

    def getiter(self, obj: Any) -> Iterator[Any]:
        """RestrictedPython's ``_getiter_``: every item costs ``FUEL_ITERATION``."""
        return self._metered(iter(obj))

    def _metered(self, it: Iterator[Any]) -> Iterator[Any]:
        charge = self.fuel.charge
        for item in it:
            charge(FUEL_ITERATION)
            yield item

    def fmt(self, value: Any) -> Any:
        """A value formatted by an f-string: scalars only (no object reprs, no addresses)."""
        t = type(value)
        if t not in _SCALARS:
            raise _forbidden(
                f"f-strings may only format str, int, bytes, bool or None, not {t.__name__}"
            )
        self.fuel.charge(FUEL_OP + (len(value) // SCAN if t in _TEXT else 0))
        return value

    def fstr(self, value: str) -> str:
        self.alloc(len(value), "a string")
        return value

    def cmp(self, op: str, a: Any, b: Any) -> Any:
        """One comparison ``a <op> b``."""
        if op == "in":
            return self.contains(b, a)
        if op == "notin":
            return not self.contains(b, a)
        if op == "is":
            self.fuel.charge(FUEL_OP)
            return a is b
        if op == "isnot":
            self.fuel.charge(FUEL_OP)
            return a is not b
        ta, tb = type(a), type(b)
        if ta in _SCALARS and tb in _SCALARS:
            cost = FUEL_OP
            if ta in _TEXT and tb in _TEXT:
                cost += min(len(a), len(b)) // SCAN
            self.fuel.charge(cost)
            return _ORDERING[op](a, b)
        if ta in _COMPARABLE and tb in _COMPARABLE:
            self.weigh(a)
            self.weigh(b)
            return _ORDERING[op](a, b)
        if ta in _VIEWS or tb in _VIEWS:
            raise _forbidden("dict views cannot be compared; compare lists instead")
        self.fuel.charge(FUEL_OP)
        if op == "eq":
            return a is b
        if op == "noteq":
            return a is not b
        raise _crash(f"{ta.__name__} and {tb.__name__} values cannot be ordered")

    def chain(self, ops: tuple[str, ...], left: Any, first: Any, *rest: Callable[[], Any]) -> Any:
        """A chained comparison ``left op0 first op1 rest[0]() ...``, lazily like Python's."""
        result = self.cmp(ops[0], left, first)
        previous = first
        for op, thunk in zip(ops[1:], rest, strict=True):
            if not result:
                return result
            current = thunk()
            result = self.cmp(op, previous, current)
            previous = current
        return result

    def contains(self, container: Any, item: Any) -> bool:
        t = type(container)
        if t in _TEXT:
            if type(item) is not t:
                raise _crash(f"'in <{t.__name__}>' needs a {t.__name__} on the left")
            self.fuel.charge(FUEL_OP + (len(container) + len(item)) // SCAN)
            return item in container
        if t is dict or t is _KEYS_VIEW:
            return self.key(item) in container
        if t is range:
            self.fuel.charge(FUEL_OP)
            return type(item) in _INTS and item in container
        if t is list or t is tuple:
            self.weigh(item)
            self.weigh(container)
            return item in container
        raise _forbidden(f"'in' is not available on {t.__name__} values")

    # --- RestrictedPython hooks ----------------------------------------------------------

    def getattr_(self, obj: Any, name: str) -> Any:
        """``obj.name``: only whitelisted attributes; methods come wrapped and metered."""
        if type(name) is not str or name.startswith("_"):
            raise _forbidden(f"attribute {name!r} is not available in contracts")
        self.fuel.charge(FUEL_OP)
        t = type(obj)
        handler = _METHODS.get(t, _EMPTY).get(name)
        if handler is None:
            if isinstance(obj, Context):
                handler = _CONTEXT_METHODS.get(name)
                if handler is None and name in _CONTEXT_ATTRIBUTES:
                    return getattr(obj, name)
            elif isinstance(obj, ViewContext):
                handler = _VIEW_METHODS.get(name)
                if handler is None and name in _VIEW_ATTRIBUTES:
                    return getattr(obj, name)
            elif isinstance(obj, Args):
                handler = _ARGS_METHODS.get(name)
            elif t is ContractError and name in ("message", "code"):
                return getattr(obj, name)
            elif t is SafeType and obj.real is int and name == "from_bytes":
                return functools.partial(_int_from_bytes, self)
            elif (
                self.user_class is not None
                and (obj is self.user_class or t is self.user_class)
                and name in vars(self.user_class)
            ):
                return getattr(obj, name)
        if handler is None:
            what = obj.real.__name__ if t is SafeType else t.__name__
            raise _forbidden(f"{what}.{name} is not available in contracts")
        return functools.partial(handler, self, obj)

    def getitem(self, obj: Any, key: Any) -> Any:
        """``obj[key]``."""
        t = type(obj)
        if t is dict:
            return obj[self.key(key)]
        if t in _SEQS:
            if type(key) is slice:
                self.alloc(len(range(*key.indices(len(obj)))))
            else:
                self.fuel.charge(FUEL_OP)
            return obj[key]
        if t is range:
            self.fuel.charge(FUEL_OP)
            return obj[key]
        raise _forbidden(f"{t.__name__} values cannot be indexed")

    def write(self, obj: Any) -> Any:
        """RestrictedPython's ``_write_``: only lists and dicts may be assigned into."""
        if type(obj) is list or type(obj) is dict:
            return _WriteProxy(self, obj)
        raise _forbidden(f"{_tname(obj)} values cannot be assigned into")

    def setitem(self, target: Any, key: Any, value: Any) -> None:
        if type(target) is dict:
            self.key(key)
            if key not in target and len(target) >= MAX_SEQUENCE:
                raise _limit(f"a dict exceeds the limit of {MAX_SEQUENCE} items")
            self.fuel.charge(FUEL_OP)
            target[key] = value
        elif type(key) is slice:
            items = self.take(value)
            removed = len(range(*key.indices(len(target))))
            self.alloc(len(target) - removed + len(items), "a list")
            target[key] = items
        else:
            self.fuel.charge(FUEL_OP)
            target[key] = value

    def delitem(self, target: Any, key: Any) -> None:
        if type(target) is dict:
            self.key(key)
        self.fuel.charge(FUEL_OP + len(target) // SCAN)
        del target[key]

    def inplacevar(self, op: str, x: Any, y: Any) -> Any:
        """``x op= y`` for a plain name ``x`` (RestrictedPython forbids the other targets)."""
        name = _INPLACE.get(op)
        if name is None:
            raise _forbidden(f"{op} is not available in contracts")
        if type(x) is list and name == "add":
            items = self.take(y)
            self.alloc(len(x) + len(items), "a list")
            x.extend(items)
            return x
        if type(x) is list and name == "mult" and type(y) in _INTS:
            self.alloc(len(x) * max(y, 0), "a list")
            x *= y
            return x
        if type(x) is dict and name == "bitor":
            _dict_update(self, x, y)
            return x
        return getattr(self, f"op_{name}")(x, y)

    # --- binary operators --------------------------------------------------------------

    def _unsupported(self, name: str, a: Any, b: Any) -> NoReturn:
        raise _crash(
            f"unsupported operand types for {_SYMBOL[name]}: {_tname(a)!r} and {_tname(b)!r}"
        )

    def op_add(self, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta in _INTS and tb in _INTS:
            return self.int_result(a + b)
        if ta is tb and ta in _SEQS:
            self.alloc(len(a) + len(b))
            return a + b
        self._unsupported("add", a, b)

    def op_sub(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a - b)
        self._unsupported("sub", a, b)

    def op_mult(self, a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta in _INTS and tb in _INTS:
            if a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
                raise _limit(f"integer results are limited to {MAX_INT_BITS} bits")
            words = (a.bit_length() // 64 + 1) * (b.bit_length() // 64 + 1)
            self.fuel.charge(words // SCAN)
            return self.int_result(a * b)
        if ta in _SEQS and tb in _INTS:
            self.alloc(len(a) * max(b, 0))
            return a * b
        if ta in _INTS and tb in _SEQS:
            self.alloc(len(b) * max(a, 0))
            return a * b
        self._unsupported("mult", a, b)

    def op_floordiv(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a // b)
        self._unsupported("floordiv", a, b)

    def op_mod(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a % b)
        if type(a) in _TEXT:
            raise _forbidden("% formatting is not available in contracts; use f-strings or +")
        self._unsupported("mod", a, b)

    def op_pow(self, a: Any, b: Any) -> Any:
        if type(a) not in _INTS or type(b) not in _INTS:
            self._unsupported("pow", a, b)
        if b < 0:
            raise _forbidden("negative exponents are not available (contracts have no floats)")
        if a not in (0, 1, -1) and (a.bit_length() - 1) * b + 1 > MAX_INT_BITS:
            raise _limit(f"integer results are limited to {MAX_INT_BITS} bits")
        result = a**b
        words = result.bit_length() // 64 + 1
        self.fuel.charge((words * words // SCAN) * max(1, b.bit_length()))
        return self.int_result(result)

    def op_lshift(self, a: Any, b: Any) -> Any:
        if type(a) not in _INTS or type(b) not in _INTS:
            self._unsupported("lshift", a, b)
        if b > MAX_INT_BITS or (b > 0 and a.bit_length() + b > MAX_INT_BITS):
            raise _limit(f"integer results are limited to {MAX_INT_BITS} bits")
        return self.int_result(a << b)

    def op_rshift(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a >> b)
        self._unsupported("rshift", a, b)

    def op_bitor(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a | b)
        if type(a) is dict and type(b) is dict:
            self.alloc(len(a) + len(b), "a dict")
            return a | b
        self._unsupported("bitor", a, b)

    def op_bitxor(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a ^ b)
        self._unsupported("bitxor", a, b)

    def op_bitand(self, a: Any, b: Any) -> Any:
        if type(a) in _INTS and type(b) in _INTS:
            return self.int_result(a & b)
        self._unsupported("bitand", a, b)

    # --- builtins ----------------------------------------------------------------------

    def _order(self, items: list[Any], key: Any, reverse: Any) -> list[Any]:
        if type(reverse) not in _INTS:
            raise _crash("reverse must be a bool")
        n = len(items)
        keys = items if key is None else [self.call_(key, item) for item in items]
        heaviest = max((self.weigh(k) for k in keys), default=1)
        self.fuel.charge(n * max(1, n.bit_length()) * heaviest)
        if key is None:
            return sorted(items, reverse=bool(reverse))
        order = sorted(range(n), key=keys.__getitem__, reverse=bool(reverse))
        return [items[i] for i in order]

    def b_sorted(self, iterable: Any, /, *, key: Any = None, reverse: Any = False) -> list[Any]:
        return self._order(self.take(iterable), key, reverse)

    def _extreme(
        self, pick: Callable[..., Any], args: tuple[Any, ...], key: Any, default: Any
    ) -> Any:
        if not args:
            raise _crash("min() and max() need at least one argument")
        items = self.take(args[0]) if len(args) == 1 else list(args)
        if not items:
            if default is _MISSING:
                raise _crash("min() or max() of an empty sequence")
            return default
        keys = items if key is None else [self.call_(key, item) for item in items]
        heaviest = max(self.weigh(k) for k in keys)
        self.fuel.charge(len(items) * heaviest)
        if key is None:
            return pick(items)
        return items[pick(range(len(items)), key=keys.__getitem__)]

    def b_min(self, *args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        return self._extreme(min, args, key, default)

    def b_max(self, *args: Any, key: Any = None, default: Any = _MISSING) -> Any:
        return self._extreme(max, args, key, default)

    def b_all(self, iterable: Any, /) -> bool:
        return all(self.getiter(iterable))

    def b_any(self, iterable: Any, /) -> bool:
        return any(self.getiter(iterable))

    def b_list(self, iterable: Any = (), /) -> list[Any]:
        return self.take(iterable)

    def b_tuple(self, iterable: Any = (), /) -> tuple[Any, ...]:
        return tuple(self.take(iterable))

    def b_dict(self, source: Any = None, /, **kwargs: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        if source is not None:
            _dict_update(self, out, source)
        self.alloc(len(out) + len(kwargs), "a dict")
        out.update(kwargs)
        return out

    def b_str(self, value: Any = "", /) -> str:
        t = type(value)
        if t is str:
            self.fuel.charge(FUEL_OP)
            return cast(str, value)
        if t not in _SCALARS:
            raise _forbidden(f"str() accepts str, int, bytes, bool or None, not {t.__name__}")
        text = str(value)
        self.alloc(len(text), "a string")
        return text

    def b_int(self, value: Any = 0, /, base: Any = _MISSING) -> int:
        t = type(value)
        if t is str:
            if len(value) > 2 * MAX_INT_BITS + 16:
                raise _limit(f"integer results are limited to {MAX_INT_BITS} bits")
            self.fuel.charge(FUEL_OP + len(value) // SCAN)
            result = int(value) if base is _MISSING else int(value, base)
            return self.int_result(result)
        if t in _INTS and base is _MISSING:
            return self.int_result(int(value))
        raise _forbidden(f"int() accepts str, int or bool, not {t.__name__}")

    def b_isinstance(self, value: Any, kinds: Any, /) -> bool:
        self.fuel.charge(FUEL_OP)
        return isinstance(value, self._real_type(kinds, nested=False))

    def _real_type(self, kind: Any, *, nested: bool) -> Any:
        if type(kind) is SafeType:
            return kind.real
        if kind is bool or (self.user_class is not None and kind is self.user_class):
            return kind
        if type(kind) is tuple and not nested and len(kind) <= 16:
            return tuple(self._real_type(k, nested=True) for k in kind)
        raise _forbidden(
            "isinstance() accepts list, dict, tuple, str, int, bool or a tuple of them"
        )

    # --- library -----------------------------------------------------------------------

    def require(self, condition: Any, message: Any, code: Any = "requirement_failed") -> None:
        """Fail the call with ``message`` unless ``condition`` holds."""
        _need_str(message, "require()'s message")
        if not 0 < len(_need_str(code, "require()'s code")) <= MAX_ERROR_CODE:
            raise _limit(f"error codes are 1 to {MAX_ERROR_CODE} characters")
        self.fuel.charge(FUEL_OP)
        if not condition:
            raise ContractError(message[:MAX_ERROR_MESSAGE], code=code)

    def sha256(self, data: Any) -> bytes:
        """SHA-256 digest of ``data`` (bytes)."""
        if not isinstance(data, bytes):
            raise _crash(f"sha256() needs bytes, not {_tname(data)}")
        self.fuel.charge(FUEL_SHA256 + len(data) // 8)
        return hashlib.sha256(data).digest()


# --- wrapped methods -------------------------------------------------------------------
# Each handler is called as handler(runtime, obj, *args, **kwargs) via functools.partial.

Handler = Callable[..., Any]
_EMPTY: Mapping[str, Handler] = {}


def _scalar_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    size = 0
    for a in (*args, *kwargs.values()):
        t = type(a)
        if t not in _SCALARS:
            raise _forbidden(
                f"string methods accept str, bytes, int or bool arguments, not {t.__name__}"
            )
        if t in _TEXT:
            size += len(a)
    return size


def _result(rt: Runtime, result: Any) -> Any:
    t = type(result)
    if t in _TEXT or t is list or t is tuple:
        rt.alloc(len(result))
    return result


def _text_method(name: str) -> Handler:
    def handler(rt: Runtime, obj: Any, *args: Any, **kwargs: Any) -> Any:
        size = _scalar_args(args, kwargs)
        rt.fuel.charge(FUEL_OP + (len(obj) + size) // SCAN)
        return _result(rt, getattr(obj, name)(*args, **kwargs))

    return handler


def _strip_method(name: str) -> Handler:
    def handler(rt: Runtime, obj: Any, chars: Any = None) -> Any:
        _scalar_args((chars,), {})
        if chars is not None and len(chars) > MAX_STRIP_CHARS:
            raise _limit(f"{name}() accepts at most {MAX_STRIP_CHARS} characters to strip")
        width = 1 if chars is None else 1 + len(chars) // 8
        rt.fuel.charge(FUEL_OP + len(obj) * width // SCAN)
        return _result(rt, getattr(obj, name)(chars))

    return handler


def _replace(rt: Runtime, obj: Any, old: Any, new: Any, count: Any = -1) -> Any:
    _scalar_args((old, new, count), {})
    if type(old) is not type(obj) or type(new) is not type(obj) or type(count) not in _INTS:
        raise _crash("replace() needs two values of the same type as the receiver and an int")
    rt.fuel.charge(FUEL_OP + len(obj) // SCAN)
    hits = obj.count(old)
    if count >= 0:
        hits = min(hits, count)
    rt.alloc(len(obj) + hits * (len(new) - len(old)))
    return obj.replace(old, new, count)


def _join(rt: Runtime, sep: Any, iterable: Any) -> Any:
    items = rt.take(iterable)
    total = len(sep) * max(len(items) - 1, 0)
    for item in items:
        if type(item) is not type(sep):
            raise _crash(f"join() needs {_tname(sep)} items, not {_tname(item)}")
        total += len(item)
    rt.alloc(total)
    return sep.join(items)


def _encode(rt: Runtime, text: str, encoding: Any = "utf-8") -> bytes:
    if encoding not in ("utf-8", "utf8"):
        raise _forbidden("only utf-8 encoding is available")
    rt.alloc(4 * len(text))
    return text.encode("utf-8")


def _decode(rt: Runtime, raw: bytes, encoding: Any = "utf-8") -> str:
    if encoding not in ("utf-8", "utf8"):
        raise _forbidden("only utf-8 decoding is available")
    rt.alloc(len(raw))
    return raw.decode("utf-8")


def _hex(rt: Runtime, raw: bytes) -> str:
    rt.alloc(2 * len(raw))
    return raw.hex()


def _to_bytes(
    rt: Runtime, value: int, length: Any = 1, byteorder: Any = "big", *, signed: Any = False
) -> bytes:
    if type(length) not in _INTS or not 0 <= length <= MAX_INT_BYTES:
        raise _limit(f"to_bytes() lengths are limited to {MAX_INT_BYTES}")
    rt.fuel.charge(FUEL_OP + length)
    return value.to_bytes(length, byteorder, signed=bool(signed))


def _int_from_bytes(rt: Runtime, raw: Any, byteorder: Any = "big", *, signed: Any = False) -> int:
    if not isinstance(raw, bytes):
        raise _crash(f"int.from_bytes() needs bytes, not {_tname(raw)}")
    if len(raw) > MAX_INT_BYTES:
        raise _limit(f"int.from_bytes() accepts at most {MAX_INT_BYTES} bytes")
    rt.fuel.charge(FUEL_OP + len(raw) // 8)
    return int.from_bytes(raw, byteorder, signed=bool(signed))


def _bit_length(rt: Runtime, value: int) -> int:
    return value.bit_length()


def _list_append(rt: Runtime, xs: list[Any], item: Any) -> None:
    if len(xs) >= MAX_SEQUENCE:
        raise _limit(f"a list exceeds the limit of {MAX_SEQUENCE} items")
    rt.fuel.charge(FUEL_OP)
    xs.append(item)


def _list_extend(rt: Runtime, xs: list[Any], iterable: Any) -> None:
    items = rt.take(iterable)
    rt.alloc(len(xs) + len(items), "a list")
    xs.extend(items)


def _list_insert(rt: Runtime, xs: list[Any], index: Any, item: Any) -> None:
    if len(xs) >= MAX_SEQUENCE:
        raise _limit(f"a list exceeds the limit of {MAX_SEQUENCE} items")
    rt.fuel.charge(FUEL_OP + len(xs) // SCAN)
    xs.insert(index, item)


def _list_pop(rt: Runtime, xs: list[Any], *index: Any) -> Any:
    rt.fuel.charge(FUEL_OP + len(xs) // SCAN)
    return xs.pop(*index)


def _searching(name: str) -> Handler:
    def handler(rt: Runtime, seq: Any, item: Any, *args: Any) -> Any:
        rt.weigh(item)
        rt.weigh(seq)
        return getattr(seq, name)(item, *args)

    return handler


def _list_reverse(rt: Runtime, xs: list[Any]) -> None:
    rt.fuel.charge(FUEL_OP + len(xs) // SCAN)
    xs.reverse()


def _list_sort(rt: Runtime, xs: list[Any], *, key: Any = None, reverse: Any = False) -> None:
    xs[:] = rt._order(list(xs), key, reverse)


def _copy(rt: Runtime, obj: Any) -> Any:
    rt.alloc(len(obj))
    return obj.copy()


def _clear(rt: Runtime, obj: Any) -> None:
    rt.fuel.charge(FUEL_OP)
    obj.clear()


def _dict_get(rt: Runtime, d: dict[Any, Any], key: Any, default: Any = None) -> Any:
    return d.get(rt.key(key), default)


def _dict_pop(rt: Runtime, d: dict[Any, Any], key: Any, *default: Any) -> Any:
    return d.pop(rt.key(key), *default)


def _dict_setdefault(rt: Runtime, d: dict[Any, Any], key: Any, default: Any = None) -> Any:
    if rt.key(key) not in d and len(d) >= MAX_SEQUENCE:
        raise _limit(f"a dict exceeds the limit of {MAX_SEQUENCE} items")
    return d.setdefault(key, default)


def _dict_update(rt: Runtime, d: dict[Any, Any], source: Any = None, /, **kwargs: Any) -> None:
    pairs: list[tuple[Any, Any]] = []
    if type(source) is dict:
        rt.alloc(len(source), "a dict")
        pairs.extend(source.items())
    elif source is not None:
        for pair in rt.take(source):
            if type(pair) not in (tuple, list) or len(pair) != 2:
                raise _crash("dict updates need (key, value) pairs")
            pairs.append((rt.key(pair[0]), pair[1]))
    pairs.extend(kwargs.items())
    rt.alloc(len(d) + len(pairs), "a dict")
    d.update(pairs)


def _dict_view(name: str) -> Handler:
    def handler(rt: Runtime, d: dict[Any, Any]) -> Any:
        rt.fuel.charge(FUEL_OP)
        return getattr(d, name)()

    return handler


def _dict_popitem(rt: Runtime, d: dict[Any, Any]) -> Any:
    rt.fuel.charge(FUEL_OP)
    return d.popitem()


_STR_SIMPLE = (
    "lower",
    "upper",
    "startswith",
    "endswith",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "split",
    "rsplit",
    "splitlines",
    "partition",
    "rpartition",
    "removeprefix",
    "removesuffix",
    "isdigit",
    "isalpha",
    "isalnum",
    "isspace",
    "islower",
    "isupper",
    "isascii",
)
_BYTES_SIMPLE = (
    "startswith",
    "endswith",
    "find",
    "rfind",
    "index",
    "count",
    "split",
    "removeprefix",
    "removesuffix",
)
_STRIPS = ("strip", "lstrip", "rstrip")

_INT_METHODS: dict[str, Handler] = {"bit_length": _bit_length, "to_bytes": _to_bytes}
_METHODS: dict[type, Mapping[str, Handler]] = {
    str: {
        **{n: _text_method(n) for n in _STR_SIMPLE},
        **{n: _strip_method(n) for n in _STRIPS},
        "replace": _replace,
        "join": _join,
        "encode": _encode,
    },
    bytes: {
        **{n: _text_method(n) for n in _BYTES_SIMPLE},
        **{n: _strip_method(n) for n in _STRIPS},
        "replace": _replace,
        "join": _join,
        "decode": _decode,
        "hex": _hex,
    },
    int: _INT_METHODS,
    bool: _INT_METHODS,
    list: {
        "append": _list_append,
        "extend": _list_extend,
        "insert": _list_insert,
        "pop": _list_pop,
        "remove": _searching("remove"),
        "index": _searching("index"),
        "count": _searching("count"),
        "reverse": _list_reverse,
        "sort": _list_sort,
        "copy": _copy,
        "clear": _clear,
    },
    tuple: {"index": _searching("index"), "count": _searching("count")},
    dict: {
        "get": _dict_get,
        "pop": _dict_pop,
        "setdefault": _dict_setdefault,
        "update": _dict_update,
        "keys": _dict_view("keys"),
        "values": _dict_view("values"),
        "items": _dict_view("items"),
        "popitem": _dict_popitem,
        "copy": _copy,
        "clear": _clear,
    },
}


def _state_key(rt: Runtime, key: Any) -> str:
    rt.fuel.charge(FUEL_OP)
    return _need_str(key, "a state key")


def _ctx_get(rt: Runtime, ctx: ViewContext, key: Any, default: Any = None) -> Any:
    return ctx.get(_state_key(rt, key), default)


def _ctx_get_int(rt: Runtime, ctx: ViewContext, key: Any) -> int:
    return ctx.get_int(_state_key(rt, key))


def _ctx_has(rt: Runtime, ctx: ViewContext, key: Any) -> bool:
    return ctx.has(_state_key(rt, key))


def _ctx_items(
    rt: Runtime, ctx: ViewContext, prefix: Any = "", *, after: Any = "", limit: Any = 100
) -> list[Any]:
    rt.fuel.charge(FUEL_OP)
    _need_str(prefix, "a key prefix")
    _need_str(after, "a key")
    if type(limit) is not int:
        raise _crash("items() needs an integer limit")
    return ctx.items(prefix, after=after, limit=limit)


def _plain_args(rt: Runtime, args: Any, what: str) -> dict[str, Any]:
    if args is None:
        return {}
    if type(args) is not dict:
        raise _crash(f"{what} arguments must be a dict, not {_tname(args)}")
    rt.weigh(args)
    return args


def _ctx_call_view(
    rt: Runtime, ctx: ViewContext, contract: Any, method: Any, args: Any = None
) -> Any:
    rt.fuel.charge(FUEL_OP)
    _need_str(contract, "a contract name")
    _need_str(method, "a method name")
    # The callee's calls count on from ours: the depth bound holds for the whole stack.
    return ctx.call_view(
        contract, method, _plain_args(rt, args, "call_view()"), call_depth=rt.depth
    )


def _ctx_schedule(
    rt: Runtime,
    ctx: Context,
    method: Any,
    args: Any = None,
    *,
    at_height: Any = None,
    at_time_ms: Any = None,
    fuel: Any = 100_000,
) -> bytes:
    rt.fuel.charge(FUEL_OP)
    _need_str(method, "a method name")
    return ctx.schedule(
        method,
        _plain_args(rt, args, "schedule()"),
        at_height=at_height,
        at_time_ms=at_time_ms,
        fuel=fuel,
    )


def _ctx_cancel_schedule(rt: Runtime, ctx: Context, schedule_id: Any) -> bool:
    rt.fuel.charge(FUEL_OP)
    return ctx.cancel_schedule(schedule_id)


def _ctx_require(
    rt: Runtime, ctx: ViewContext, condition: Any, message: Any, code: Any = "requirement_failed"
) -> None:
    rt.require(condition, message, code)


def _ctx_set(rt: Runtime, ctx: Context, key: Any, value: Any) -> None:
    key = _state_key(rt, key)
    rt.weigh(value)
    ctx.set(key, value)


def _ctx_delete(rt: Runtime, ctx: Context, key: Any) -> None:
    ctx.delete(_state_key(rt, key))


def _ctx_emit(rt: Runtime, ctx: Context, name: Any, **data: Any) -> None:
    _need_str(name, "an event name")
    if not 0 < len(name) <= MAX_EVENT_NAME:
        raise _limit(f"event names are 1 to {MAX_EVENT_NAME} characters")
    for value in data.values():
        rt.weigh(value)
    ctx.emit(name, **data)


def _ctx_has_role(rt: Runtime, ctx: ViewContext, role: Any, address: Any, org: Any = None) -> bool:
    rt.fuel.charge(FUEL_OP)
    if not 0 < len(_need_str(role, "a role")) <= MAX_KEY_LENGTH:
        raise _limit(f"roles are 1 to {MAX_KEY_LENGTH} characters")
    if not isinstance(address, bytes) or len(address) != ADDRESS_SIZE:
        raise _crash(f"has_role() needs a {ADDRESS_SIZE}-byte address")
    if org is not None:
        _need_str(org, "an organisation id")
    return ctx.has_role(role, address, org)


_VIEW_METHODS: dict[str, Handler] = {
    "get": _ctx_get,
    "has_role": _ctx_has_role,
    "get_int": _ctx_get_int,
    "has": _ctx_has,
    "items": _ctx_items,
    "call_view": _ctx_call_view,
    "require": _ctx_require,
}
_CONTEXT_METHODS: dict[str, Handler] = {
    **_VIEW_METHODS,
    "set": _ctx_set,
    "delete": _ctx_delete,
    "emit": _ctx_emit,
    "schedule": _ctx_schedule,
    "cancel_schedule": _ctx_cancel_schedule,
}
_VIEW_ATTRIBUTES = frozenset({"contract", "height"})
_CONTEXT_ATTRIBUTES = _VIEW_ATTRIBUTES | {
    "chain_id",
    "time_ms",
    "tx_id",
    "sender",
    "sender_key",
    "scheduled",
}


def _args_method(name: str) -> Handler:
    def handler(rt: Runtime, args: Args, *params: Any, **kwargs: Any) -> Any:
        rt.fuel.charge(FUEL_OP)
        if name != "check_no_extra":
            _need_str(params[0] if params else kwargs.get("name"), "an argument name")
        return getattr(args, name)(*params, **kwargs)

    return handler


_ARGS_METHODS: dict[str, Handler] = {
    n: _args_method(n) for n in ("text", "integer", "blob", "blob_max", "address", "check_no_extra")
}


# --- the contract adapter ----------------------------------------------------------------


def _line_of(exc: BaseException, filename: str) -> int | None:
    """The contract line the exception passed through last (the innermost)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _message_of(exc: LedgerError) -> str:
    message = exc.message if isinstance(exc.message, str) else "contract error"
    return message[:MAX_ERROR_MESSAGE]


class SandboxedContract(Contract):
    """A compiled user contract behind the interface every contract has.

    ``get_method(method, kind)`` returns ``fn(ctx, args)`` like a built-in contract's bound
    method; each call runs the module code in a fresh namespace under ``ctx.fuel``.
    """

    def __init__(
        self, *, code: types.CodeType, filename: str, class_name: str, methods: Mapping[str, str]
    ) -> None:
        self._code = code
        self._filename = filename
        self._class_name = class_name
        self._methods = dict(methods)

    def get_method(self, method: str, kind: str) -> Callable[..., Value]:
        if self._methods.get(method) != kind:
            what = "method" if kind == "call" else "view"
            raise ContractError(
                f"contract {self.name!r} has no {what} {method!r}", code="unknown_method"
            )
        return functools.partial(self._invoke, method, kind)

    def methods(self, kind: str) -> list[str]:
        return sorted(n for n, k in self._methods.items() if k == kind)

    def _invoke(self, method: str, kind: str, ctx: ViewContext, args: Args) -> Value:
        ctx.fuel.charge(FUEL_ENTRY)
        rt = Runtime(ctx.fuel)
        rt.depth = ctx.call_depth
        try:
            namespace = rt.namespace()
            exec(self._code, namespace)
            cls = namespace[self._class_name]
            rt.user_class = cls
            fn = vars(cls)[method]
            if getattr(fn, "__civic_kind__", None) != kind:  # the compiler checked this
                raise ContractError(f"{method!r} is not a {kind} method", code="unknown_method")
            result = rt.call_(fn, cls(), ctx, args)
            rt.weigh(result)
            if len(encode(result)) > MAX_RESULT_SIZE:
                raise _limit(f"the result of {method} exceeds {MAX_RESULT_SIZE} bytes encoded")
            return cast(Value, result)
        except OutOfFuel as exc:
            raise OutOfFuel(self._where(exc) + _message_of(exc)) from None
        except LedgerError as exc:
            code = exc.code
            if not isinstance(code, str) or not 0 < len(code) <= MAX_ERROR_CODE:
                code = "contract_error"
            raise ContractError(self._where(exc) + _message_of(exc), code=code) from None
        except Exception as exc:  # contract code is untrusted: every failure is its failure
            raise ContractError(self._where(exc) + type(exc).__name__, code=CODE_CRASHED) from None

    def _where(self, exc: BaseException) -> str:
        line = _line_of(exc, self._filename)
        return "" if line is None else f"line {line}: "
