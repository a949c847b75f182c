"""The user-contract sandbox: compile-time rejection, run-time metering and limits.

Contracts run through ``execute_transactions`` exactly as a block would run them, so a
stopped call is checked the way it matters: a failed receipt and no state change but the
sender's nonce.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from tests.dict_state import DictState

from civicledger.chain.receipt import STATUS_FAILED, STATUS_OK, Event, Receipt
from civicledger.chain.transaction import Transaction
from civicledger.contracts.base import Args, Context, FuelMeter, state_key
from civicledger.contracts.registry import ContractRegistry
from civicledger.contracts.sandbox import (
    CODE_REJECTED,
    MAX_AST_NODES,
    MAX_SOURCE_BYTES,
    CompiledContract,
    compile_contract,
)
from civicledger.crypto.keys import KeyPair
from civicledger.encoding import Value, decode, encode
from civicledger.errors import ContractError, OutOfFuel
from civicledger.execution.executor import BlockEnv, execute_transactions, nonce_key, run_query
from civicledger.state.overlay import BlockOverlay, TxOverlay
from civicledger.types import Address, Hash32, PublicKey

Sign = Callable[..., Transaction]

COUNTER = '''\
"""A counter with a cap."""

LIMIT = 100


def double(x):
    return x * 2


class Counter:
    name = "counter"

    @call
    def add(self, ctx, args):
        n = args.integer("n", minimum=1, maximum=LIMIT)
        require(n != 13, "13 is unlucky")
        total = ctx.get_int("total") + n
        ctx.set("total", total)
        ctx.emit("Added", n=n, total=total)
        return total

    @call
    def spin(self, ctx, args):
        n = args.integer("n", maximum=10_000)
        acc = 0
        for i in range(n):
            acc = acc + double(i)
        ctx.set("acc", acc)
        return acc

    @call
    def divide(self, ctx, args):
        d = args.integer("d", maximum=10)
        return self.helper(d)

    def helper(self, d):
        return 10 // d

    @view
    def total(self, ctx, args):
        return ctx.get_int("total")
'''


def line_of(source: str, fragment: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if fragment in line)


REQUIRE_LINE = line_of(COUNTER, "require(n != 13")
HELPER_LINE = line_of(COUNTER, "10 // d")
ARGS_LINE = line_of(COUNTER, 'args.integer("n", minimum=1')


class Ledger:
    """A fresh in-memory chain holding one sandboxed contract."""

    def __init__(self, compiled: CompiledContract, sign: Sign, key: KeyPair) -> None:
        self.contract = compiled.instantiate()
        self.registry = ContractRegistry([self.contract])
        self.state = DictState()
        self.sign = sign
        self.key = key
        self.nonce = 0
        self.height = 0

    def call(
        self, method: str, args: dict[str, Value] | None = None, *, fuel_limit: int = 1_000_000
    ) -> tuple[Receipt, dict[bytes, bytes | None]]:
        tx = self.sign(
            self.key, self.nonce, self.contract.name, method, args or {}, fuel_limit=fuel_limit
        )
        self.nonce += 1
        self.height += 1
        env = BlockEnv("test-1", self.height, 1_750_000_000_000 + self.height)
        result = execute_transactions(self.registry, self.state, env, [tx])
        self.state.apply(result.changes)
        return result.receipts[0], result.changes

    def query(self, method: str, args: dict[str, Value] | None = None) -> Any:
        return run_query(
            self.registry, self.state, self.height, self.contract.name, method, args or {}
        )

    def get(self, key: str) -> Value:
        raw = self.state.get(state_key(self.contract.name, key))
        return None if raw is None else decode(raw)


@pytest.fixture
def ledger(sign: Sign, alice: KeyPair) -> Ledger:
    return Ledger(compile_contract(COUNTER, name="counter"), sign, alice)


def probe(body: str, *, helpers: str = "", members: str = "") -> str:
    """A contract whose ``run`` call writes a key, then runs ``body``."""
    return (
        textwrap.dedent(helpers)
        + "\n\nclass Probe:\n"
        + textwrap.indent(textwrap.dedent(members), "    ")
        + "\n    @call\n    def run(self, ctx, args):\n"
        + '        ctx.set("touched", 1)\n'
        + textwrap.indent(textwrap.dedent(body), "        ")
        + "\n        return None\n"
    )


def assert_rejected(source: str, fragment: str = "") -> ContractError:
    with pytest.raises(ContractError) as info:
        compile_contract(source, name="probe")
    assert info.value.code == CODE_REJECTED, info.value.message
    assert fragment in info.value.message
    return info.value


def run_stopped(sign: Sign, key: KeyPair, source: str, fuel_limit: int = 1_000_000) -> Receipt:
    """Run ``Probe.run``; it must fail and leave nothing but the nonce bump behind."""
    ledger = Ledger(compile_contract(source, name="probe"), sign, key)
    receipt, changes = ledger.call("run", fuel_limit=fuel_limit)
    assert receipt.status == STATUS_FAILED, receipt
    assert receipt.events == () and receipt.result is None
    assert list(changes) == [nonce_key(key.address)]
    assert ledger.get("touched") is None
    return receipt


# --- a working contract -----------------------------------------------------------------


def test_counter_compiles_with_its_methods() -> None:
    compiled = compile_contract(COUNTER, name="counter")
    contract = compiled.instantiate()
    assert contract.name == "counter"
    assert contract.methods("call") == ["add", "divide", "spin"]
    assert contract.methods("view") == ["total"]
    with pytest.raises(ContractError) as info:
        contract.get_method("helper", "call")
    assert info.value.code == "unknown_method"
    with pytest.raises(ContractError):
        contract.get_method("total", "call")


def test_counter_runs_through_the_executor(ledger: Ledger, alice: KeyPair) -> None:
    receipt, changes = ledger.call("add", {"n": 5})
    assert receipt.status == STATUS_OK, receipt
    assert receipt.result == 5
    assert receipt.events == (Event("counter", "Added", {"n": 5, "total": 5}),)
    assert changes[state_key("counter", "total")] == encode(5)
    receipt, _ = ledger.call("add", {"n": 7})
    assert receipt.result == 12
    assert ledger.get("total") == 12
    assert ledger.query("total") == 12


def test_require_failure_names_the_contract_line(ledger: Ledger, alice: KeyPair) -> None:
    ledger.call("add", {"n": 2})
    receipt, changes = ledger.call("add", {"n": 13})
    assert receipt.status == STATUS_FAILED
    assert receipt.error_code == "requirement_failed"
    assert receipt.error_message == f"line {REQUIRE_LINE}: 13 is unlucky"
    assert list(changes) == [nonce_key(alice.address)]
    assert ledger.get("total") == 2


def test_python_errors_name_the_innermost_contract_line(ledger: Ledger) -> None:
    receipt, _ = ledger.call("divide", {"d": 0})
    assert receipt.error_code == "contract_crashed"
    assert receipt.error_message == f"line {HELPER_LINE}: ZeroDivisionError"
    receipt, _ = ledger.call("divide", {"d": 3})
    assert receipt.result == 3


def test_bad_arguments_keep_their_code(ledger: Ledger) -> None:
    receipt, _ = ledger.call("add", {"n": 1000})
    assert receipt.error_code == "bad_argument"
    assert receipt.error_message.startswith(f"line {ARGS_LINE}: ")


def test_direct_call_with_a_context() -> None:
    """The adapter is a plain Contract: ``get_method`` gives ``fn(ctx, args)``."""
    contract = compile_contract(COUNTER, name="counter").instantiate()
    overlay = TxOverlay(BlockOverlay(DictState()))
    fuel = FuelMeter(1_000_000)
    ctx = Context(
        overlay,
        "counter",
        fuel,
        chain_id="t",
        height=1,
        time_ms=0,
        tx_id=Hash32(bytes(32)),
        sender=Address(bytes(20)),
        sender_key=PublicKey(bytes(32)),
    )
    assert contract.get_method("add", "call")(ctx, Args({"n": 4})) == 4
    assert ctx.events == [Event("counter", "Added", {"n": 4, "total": 4})]
    assert 0 < fuel.used < 10_000
    ctx.fuel = small = FuelMeter(50_000)
    with pytest.raises(OutOfFuel) as info:
        contract.get_method("spin", "call")(ctx, Args({"n": 10_000}))
    assert small.used == small.limit
    assert info.value.message.startswith("line ")


def test_same_call_from_fresh_state_is_deterministic(sign: Sign, alice: KeyPair) -> None:
    compiled = compile_contract(COUNTER, name="counter")
    outcomes = []
    for _ in range(2):
        ledger = Ledger(compiled, sign, alice)
        receipt, changes = ledger.call("spin", {"n": 300})
        outcomes.append((receipt.result, receipt.fuel_used, receipt.events, changes))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 300 * 299


def test_fuel_grows_with_loop_iterations(sign: Sign, alice: KeyPair) -> None:
    ledger = Ledger(compile_contract(COUNTER, name="counter"), sign, alice)
    used = []
    for n in (0, 10, 100, 1000):
        receipt, _ = ledger.call("spin", {"n": n})
        assert receipt.status == STATUS_OK
        used.append(receipt.fuel_used)
    assert used == sorted(used) and len(set(used)) == 4
    per_iteration = (used[3] - used[2]) / 900
    assert per_iteration == pytest.approx((used[2] - used[1]) / 90, rel=0.2)
    assert per_iteration >= 20  # a call (double) and a loop step at least


def test_the_allowed_language_works(sign: Sign, alice: KeyPair) -> None:
    source = """
def boom():
    require(False, "evaluated too eagerly")


class Kit:
    NAMES = ("b", "a", "c")

    @call
    def run(self, ctx, args):
        words = sorted(self.NAMES)
        pairs = sorted([(2, "x"), (1, "y")], key=lambda p: p[0], reverse=True)
        d = {w: i for i, w in enumerate(words)}
        d["z"] = 26
        d.update({"y": 25})
        del d["a"]
        xs = [1, 2, 3]
        xs.append(4)
        xs += [5]
        xs[0] = 10
        xs[1:3] = [7]
        total = 0
        i = 0
        while i < len(xs):
            total += xs[i]
            i += 1
        a, b = divmod_(17, 5)
        chained = 0 < 1 < 2 and not (1 > 2 > boom())
        text = " ".join([w.upper() for w in words]) + "!"
        return {
            "words": words,
            "pairs": [list(p) for p in pairs],
            "d": d,
            "xs": xs,
            "total": total,
            "div": [a, b],
            "chained": chained,
            "text": text,
            "f": f"{total}-{text}",
            "m": [min(xs), max(xs, key=lambda x: -x), abs(-3)],
            "big": (2**255).bit_length(),
            "bytes": (258).to_bytes(2, "big") + sha256(b"")[:2],
            "in": [3 in [1, 3], "a" in "cat", "zz" in d, 5 in range(10)],
            "types": [isinstance(xs, list), isinstance("s", (int, str)), str(12), int("34")],
            "any": [any([0, 1]), all([]), bool([])],
            "none": None is None,
            "role": ctx.has_role("clerk", ctx.sender),
        }


def divmod_(a, b):
    return a // b, a % b
"""
    ledger = Ledger(compile_contract(source, name="kit"), sign, alice)
    receipt, _ = ledger.call("run")
    assert receipt.status == STATUS_OK, receipt
    assert receipt.result == {
        "words": ["a", "b", "c"],
        "pairs": [[2, "x"], [1, "y"]],
        "d": {"b": 1, "c": 2, "z": 26, "y": 25},
        "xs": [10, 7, 4, 5],
        "total": 26,
        "div": [3, 2],
        "chained": True,
        "text": "A B C!",
        "f": "26-A B C!",
        "m": [4, 4, 3],
        "big": 256,
        "bytes": b"\x01\x02\xe3\xb0",
        "in": [True, True, False, True],
        "types": [True, True, "12", 34],
        "any": [True, True, False],
        "none": True,
        "role": False,
    }


# --- rejected at compile time -----------------------------------------------------------

ESCAPES_IN_A_METHOD = {
    "class_bases_subclasses": "x = ().__class__.__bases__[0].__subclasses__()",
    "type": "t = type(args)",
    "getattr": 'x = getattr(args, "__class__")',
    "str_format_method": 'x = "{0.__class__}".format(args)',
    "format_builtin": 'x = format(args, "")',
    "fstring_dunder": 'x = f"{args.__class__}"',
    "fstring_format_spec": 'x = f"{1:>1000000000}"',
    "fstring_conversion": 'x = f"{args!r}"',
    "generator_frame": "x = (y for y in []).gi_frame",
    "generator_expression": "x = any(y for y in [1])",
    "gi_frame_attribute": "x = args.gi_frame",
    "import": "import os",
    "import_from": "from os import path",
    "dunder_import": 'x = __import__("os")',
    "open": 'x = open("/etc/passwd")',
    "eval": 'x = eval("1")',
    "exec": 'exec("x = 1")',
    "compile": 'x = compile("1", "f", "eval")',
    "globals": "x = globals()",
    "locals": "x = locals()",
    "vars": "x = vars()",
    "dir": "x = dir()",
    "lambda_code": "x = (lambda: 0).__code__",
    "dunder_dict": "x = args.__dict__",
    "set_call": "x = set([1, 2])",
    "set_literal": "x = {1, 2}",
    "set_comprehension": "x = {y for y in range(3)}",
    "frozenset": "x = frozenset()",
    "float_literal": "x = 1.5",
    "complex_literal": "x = 2j",
    "true_division": "x = 1 / 2",
    "try_except_swallowing_out_of_fuel": "try:\n    while True:\n        pass\nexcept:\n    pass",
    "try_finally": "try:\n    pass\nfinally:\n    pass",
    "setattr": 'setattr(self, "x", 1)',
    "delattr": 'delattr(self, "x")',
    "attribute_assignment": "self.x = 1",
    "attribute_deletion": "del self.run",
    "print": 'print("hi")',
    "global": "global LIMIT",
    "yield": "yield 1",
    "with": "with ctx:\n    pass",
    "assert": "assert args",
    "super": "x = super()",
    "id": "x = id(args)",
    "hash": "x = hash(1)",
    "memoryview": 'x = memoryview(b"")',
    "breakpoint": "breakpoint()",
    "input": "x = input()",
    "star_args": "x = len(*[[1]])",
    "double_star_kwargs": "x = dict(**{})",
    "dict_unpacking": "x = {**{}}",
    "is_with_a_literal": "x = args is 1",
    "lambda_default_capture": "f = lambda x=args: x",
    "nested_class": "class Inner:\n    pass",
    "match": "match args:\n    case _:\n        pass",
    "underscore_name": "_x = 1",
    "huge_int_literal": "x = 0x" + "f" * 1100,
    "matmul": "x = args @ args",
    "nonlocal": "def inner():\n    nonlocal x\nx = 1",
    "mro": "x = args.mro",
    "object": "x = object",
}


@pytest.mark.parametrize("snippet", ESCAPES_IN_A_METHOD.values(), ids=ESCAPES_IN_A_METHOD.keys())
def test_escape_in_a_method_is_rejected_with_its_line(snippet: str) -> None:
    source = probe(snippet)
    error = assert_rejected(source)
    first = source.splitlines().index(textwrap.indent(snippet.splitlines()[0], " " * 8)) + 1
    assert error.message.startswith(f"line {first}: ") or error.message.startswith(
        f"line {first + 1}: "
    ), error.message


WHOLE_SOURCE_ESCAPES = {
    "no_class": ("def f():\n    return 1\n", "exactly one class"),
    "two_classes": ("class A:\n    pass\n\n\nclass B:\n    pass\n", "second class"),
    "class_redefined_by_assignment": (probe("pass") + "\nProbe = 1\n", "twice"),
    "class_redefined_by_function": (probe("pass") + "\ndef Probe():\n    pass\n", "twice"),
    "base_class": ("class A(dict):\n    pass\n", "base class"),
    "metaclass": ("class A(metaclass=M):\n    pass\n", "base class"),
    "class_decorator": ("@call\nclass A:\n    pass\n", "decorator"),
    "mutable_class_attribute": (probe("pass", members="CACHE = []\n"), "literal"),
    "computed_module_constant": ("X = len('a')\n" + probe("pass"), "literal"),
    "module_level_loop": ("for i in range(3):\n    pass\n" + probe("pass"), "For"),
    "module_level_import": ("import os\n" + probe("pass"), "import"),
    "mutable_default_argument": (
        probe("pass", helpers="def f(x=[]):\n    return x\n"),
        "default value",
    ),
    "other_decorator": (
        probe("pass", members="@staticmethod\ndef s():\n    pass\n"),
        "decorator",
    ),
    "call_method_signature": (
        probe("pass", members="@call\ndef c(self, ctx):\n    pass\n"),
        "(self, ctx, args)",
    ),
    "dunder_method": (probe("pass", members="def __init__(self):\n    pass\n"), "'_'"),
    "getattr_hook": (probe("pass", members="def __getattr__(self, n):\n    pass\n"), "'_'"),
    "wrong_class_name_attribute": (probe("pass", members='name = "other"\n'), "'name'"),
    "async_method": (probe("pass", members="async def a(self):\n    pass\n"), "async"),
    "syntax_error": ("class A:\n    def f(:\n", "syntax error"),
}


@pytest.mark.parametrize(
    ("source", "fragment"), WHOLE_SOURCE_ESCAPES.values(), ids=WHOLE_SOURCE_ESCAPES.keys()
)
def test_structural_escape_is_rejected(source: str, fragment: str) -> None:
    assert_rejected(source, fragment)


def test_size_limits() -> None:
    padding = "# " + "x" * 100 + "\n"
    big = probe("pass") + padding * (MAX_SOURCE_BYTES // len(padding) + 1)
    assert_rejected(big, "exceeds")
    many = probe("x = [" + "1, " * (MAX_AST_NODES + 10) + "]")
    assert_rejected(many, "syntax nodes")
    deep = probe("x = " + "-" * 100 + "1")
    assert_rejected(deep, "nests deeper")
    nested = probe("x = " + "[" * 80 + "]" * 80)
    assert_rejected(nested, "nests deeper")


def test_contract_names_are_checked() -> None:
    for bad in ("", "Counter", "a/b", "$sys", "x" * 65):
        with pytest.raises(ContractError) as info:
            compile_contract(probe("pass"), name=bad)
        assert info.value.code == CODE_REJECTED


# --- stopped at run time ----------------------------------------------------------------

STOPPED_AT_RUN_TIME = {
    "huge_power": ("x = 2 ** 10**9", "limit_exceeded"),
    "huge_shift": ("x = 1 << 10**9", "limit_exceeded"),
    "power_of_a_big_base": ("x = (10 ** 1000) ** 5", "limit_exceeded"),
    "product_growth": ("x = 10 ** 1000\nx = x * x * x * x * x", "limit_exceeded"),
    "negative_power_makes_a_float": ("x = 2 ** -1", "forbidden"),
    "list_repetition_bomb": ("x = [0] * 10**9", "limit_exceeded"),
    "string_repetition_bomb": ('x = "a" * 10**9', "limit_exceeded"),
    "bytes_repetition_bomb": ('x = 10**9 * b"a"', "limit_exceeded"),
    "range_materialised": ("x = list(range(10**12))", "limit_exceeded"),
    "range_sorted": ("x = sorted(range(10**7))", "limit_exceeded"),
    "string_doubling": ('s = "x"\nwhile True:\n    s = s + s', "limit_exceeded"),
    "replace_amplification": ('s = "x" * 100000\nt = s.replace("", s)', "limit_exceeded"),
    "to_bytes_bomb": ("x = (1).to_bytes(10**9, 'big')", "limit_exceeded"),
    "percent_formatting": ('x = "%999999999d" % 1', "forbidden"),
    "while_true": ("while True:\n    pass", "out_of_fuel"),
    "huge_for_loop": ("for i in range(10**12):\n    pass", "out_of_fuel"),
    "huge_comprehension": ("x = [0 for i in range(10**12)]", "out_of_fuel"),
    "list_growth": ("xs = []\nwhile True:\n    xs.append(xs)", "out_of_fuel"),
    "infinite_recursion": ("self.run(ctx, args)", "limit_exceeded"),
    "lambda_recursion": ("f = lambda n: f(n)\nf(1)", "limit_exceeded"),
    "deep_tuple_as_dict_key": (
        "t = ()\nfor i in range(100000):\n    t = (t,)\nd = {t: 1}",
        "forbidden",
    ),
    "deep_tuple_lookup": ("t = ()\nfor i in range(1000):\n    t = (t,)\nx = t in {}", "forbidden"),
    "deep_comparison": (
        "a = []\nb = []\nfor i in range(1000):\n    a = [a]\n    b = [b]\nx = a == b",
        "limit_exceeded",
    ),
    "cyclic_comparison": ("x = []\nx.append(x)\ny = x == [x]", "limit_exceeded"),
    "deep_value_stored": (
        'v = []\nfor i in range(100):\n    v = [v]\nctx.set("v", v)',
        "limit_exceeded",
    ),
    "shared_structure_stored": (
        'v = [1]\nfor i in range(60):\n    v = [v, v]\nctx.set("v", v)',
        "limit_exceeded",
    ),
    "shared_structure_within_depth": (
        'v = [1]\nfor i in range(25):\n    v = [v, v]\nctx.set("v", v)',
        "out_of_fuel",
    ),
    "huge_result": ("return [7] * 100000", "limit_exceeded"),
    "allocation_budget": ("for i in range(20):\n    x = [0] * 1000000", "limit_exceeded"),
    "long_error_code": ('require(False, "no", "c" * 100)', "limit_exceeded"),
    "str_of_a_container": ("x = str([1])", "forbidden"),
    "fstring_of_an_object": ('x = f"{self}"', "forbidden"),
    "nested_isinstance_tuple": ("x = isinstance(1, ((((int,),),),))", "forbidden"),
    "fuel_meter_reached": ("ctx.fuel.charge(-10**9)", "forbidden"),
    "events_list_reached": ("ctx.events.append(1)", "forbidden"),
    "args_values_reached": ("x = args.values", "forbidden"),
    "system_state_reached": ('x = ctx.get_system(b"$sys/validators")', "forbidden"),
    "role_with_a_bad_address": ('x = ctx.has_role("clerk", "me")', "contract_crashed"),
    "view_context_write": ("ctx.overlay = 1", CODE_REJECTED),
    "in_on_a_lazy_iterator": ("x = 5 in zip(range(10**12))", "forbidden"),
    "dict_views_as_sets": ("x = {}.keys() | {}.keys()", "contract_crashed"),
    "rot13_codec": ('x = "a".encode("rot13")', "forbidden"),
    "long_event_name": ('ctx.emit("x" * 1000)', "limit_exceeded"),
    "raising_a_non_string": ("raise ContractError([1] * 1000)", "contract_error"),
    "undefined_builtin": ("x = pow(2, 3)", "contract_crashed"),
}

#: Cases that must hit their limit, not run out of fuel first.
MORE_FUEL = {
    STOPPED_AT_RUN_TIME["string_doubling"][0]: 10_000_000,
    STOPPED_AT_RUN_TIME["allocation_budget"][0]: 30_000_000,
}


@pytest.mark.parametrize(
    ("snippet", "code"), STOPPED_AT_RUN_TIME.values(), ids=STOPPED_AT_RUN_TIME.keys()
)
def test_stopped_at_run_time_with_state_unchanged(
    sign: Sign, alice: KeyPair, snippet: str, code: str
) -> None:
    source = probe(snippet)
    if code == CODE_REJECTED:
        assert_rejected(source)
        return
    receipt = run_stopped(sign, alice, source, MORE_FUEL.get(snippet, 1_000_000))
    assert receipt.error_code == code, receipt.error_message
    if snippet.startswith("return"):  # checked after the method returned: no line
        assert receipt.error_message.startswith("the result of run "), receipt.error_message
    else:
        assert receipt.error_message.startswith("line "), receipt.error_message
    if code == "out_of_fuel":
        assert receipt.fuel_used == 1_000_000
    else:
        assert receipt.fuel_used < MORE_FUEL.get(snippet, 1_000_000)


def test_view_cannot_write(sign: Sign, alice: KeyPair) -> None:
    source = """
class Viewer:
    @view
    def peek(self, ctx, args):
        ctx.set("x", 1)
        return 1
"""
    ledger = Ledger(compile_contract(source, name="viewer"), sign, alice)
    with pytest.raises(ContractError) as info:
        ledger.query("peek")
    assert info.value.code == "forbidden"
    assert info.value.message.startswith("line 5: ")


def test_error_messages_are_bounded(sign: Sign, alice: KeyPair) -> None:
    receipt = run_stopped(sign, alice, probe('require(False, "x" * 100000)'))
    assert receipt.error_code == "requirement_failed"
    assert len(receipt.error_message) < 600


def test_out_of_fuel_stops_a_metered_builtin(sign: Sign, alice: KeyPair) -> None:
    receipt = run_stopped(sign, alice, probe("x = sorted(list(range(200000)))"), 100_000)
    assert receipt.error_code == "out_of_fuel"


def test_keyword_labels_may_be_ordinary_words_but_not_underscored() -> None:
    ok = (
        "class Labels:\n"
        "    @call\n"
        "    def go(self, ctx, args):\n"
        "        ctx.emit('Filed', id=1, type='permit', hash=b'x')\n"
        "        return 1\n"
    )
    compile_contract(ok, name="labels")
    bad = ok.replace("id=1", "__class__=1")
    with pytest.raises(ContractError) as refused:
        compile_contract(bad, name="labels")
    assert refused.value.code == "rejected"


def test_an_event_is_what_was_emitted_even_if_its_list_changes_afterwards(
    sign: Sign, alice: KeyPair
) -> None:
    # The size limit and the fuel are measured at emit: appending to the emitted list
    # afterwards must change neither the event nor the receipt.
    source = probe(
        """
        items = [1]
        ctx.emit("Listed", items=items, note="n")
        for i in range(2000):
            items.append(i)
        """
    )
    ledger = Ledger(compile_contract(source, name="probe"), sign, alice)
    receipt, _ = ledger.call("run")
    assert receipt.status == STATUS_OK, receipt
    assert receipt.events == (Event("probe", "Listed", {"items": [1], "note": "n"}),)
    assert receipt.encoded == encode(receipt.to_value())
    assert len(receipt.encoded) < 200
