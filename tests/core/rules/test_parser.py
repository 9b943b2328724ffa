"""The condition grammar: what parses to what, and where errors point."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from syswarden.core.errors import RuleError
from syswarden.core.rules import ast
from syswarden.core.rules.compiler import compile_condition
from syswarden.core.rules.operators import OPERATORS, Kind
from syswarden.core.rules.parser import parse


def shape(node) -> str:
    """A compact rendering of a tree: precedence made visible."""
    if isinstance(node, ast.And):
        return "(" + " & ".join(shape(c) for c in node.children) + ")"
    if isinstance(node, ast.Or):
        return "(" + " | ".join(shape(c) for c in node.children) + ")"
    if isinstance(node, ast.Not):
        return "!" + shape(node.child)
    if isinstance(node, ast.MacroRef):
        return node.name
    if isinstance(node, ast.Check):
        v = node.value
        if v is None:
            val = ""
        elif isinstance(v, ast.ListLit):
            val = "[" + ",".join(("'" + i.value + "'") if i.quoted else i.value
                                 for i in v.items) + "]"
        elif isinstance(v, ast.FieldValue):
            val = "val:" + v.field.text()
        else:
            val = repr(v.value) if v.quoted else v.value
        op = f" {node.op} " if node.op.isalpha() else node.op
        return f"{node.field.text()}{op}{val}".rstrip()
    raise TypeError(node)


@pytest.mark.parametrize("condition, expected", [
    ("a", "a"),
    ("a and b or c", "((a & b) | c)"),
    ("a or b and c", "(a | (b & c))"),
    ("not a and b", "(!a & b)"),
    ("not (a and b)", "!(a & b)"),
    ("not not a", "!!a"),
    ("a and (b or c) and not d", "(a & (b | c) & !d)"),
    ("((a))", "a"),
    ("a and not(b)", "(a & !b)"),
    ("notify and android", "(notify & android)"),            # keywords end at word boundaries
    ("evt.type=open", "evt.type=open"),
    ("evt.type = open and proc.name != bash", "(evt.type=open & proc.name!=bash)"),
    ("proc.name == bash", "proc.name==bash"),
    ("fd.num>=0 and fd.num<10", "(fd.num>=0 & fd.num<10)"),
    ("proc.name in (bash, sh, \"my shell\")", "proc.name in [bash,sh,'my shell']"),
    ("proc.name in(bash,sh)", "proc.name in [bash,sh]"),
    ("proc.name in ()", "proc.name in []"),
    ("proc.name in shell_binaries", "proc.name in [shell_binaries]"),
    ("proc.args intersects (\"-V\", \"-l\")", "proc.args intersects ['-V','-l']"),
    ("fd.name pmatch (/etc, /usr/bin)", "fd.name pmatch [/etc,/usr/bin]"),
    ("fd.name startswith /etc/", "fd.name startswith /etc/"),
    ("fd.name glob '/home/*/.ssh/*'", "fd.name glob '/home/*/.ssh/*'"),
    ("k8s.ns.name exists", "k8s.ns.name exists"),
    ("proc.aname[2] = bash", "proc.aname[2]=bash"),
    ("container.mount.dest[/proc*] != \"N/A\"", "container.mount.dest[/proc*]!='N/A'"),
    ("container.label[\"a b\"] = x", "container.label[a b]=x"),
    ("evt.arg.flags contains O_TRUNC", "evt.arg.flags contains O_TRUNC"),
    ("tolower(proc.name) = bash", "tolower(proc.name)=bash"),
    ("len(basename(fd.name)) > 3", "len(basename(fd.name))>3"),
    ("proc.name = val(proc.pname)", "proc.name=val:proc.pname"),
    ("tolower(proc.name) = tolower(proc.pname)", "tolower(proc.name)=val:tolower(proc.pname)"),
    ("evt.buffer bcontains CAFEBABE", "evt.buffer bcontains CAFEBABE"),
    ("proc.cmdline contains \"a\\\"b\"", "proc.cmdline contains 'a\"b'"),
    ("proc.cmdline contains 'it''s'", None),  # two quoted values in a row: an error
    ("fd.name = \"\\x41\\n\"", "fd.name='A\\n'"),
    ("evt.dir=< and evt.type=open", "(evt.dir=< & evt.type=open)"),
    ("user.name=root\nand\tproc.name=x", "(user.name=root & proc.name=x)"),
])
def test_parses(condition, expected):
    if expected is None:
        with pytest.raises(RuleError):
            parse(condition)
        return
    assert shape(parse(condition)) == expected


@pytest.mark.parametrize("condition, column, message", [
    ("", 1, "empty condition"),
    ("a and", 6, "unexpected end of condition, expected a field, a macro or '('"),
    ("proc.name", 10, "unexpected end of condition, expected an operator"),
    ("(a", 3, "expected ')' to close the '(' opened at column 1"),
    ("proc.name = ", 13, "unexpected end of condition, expected a value"),
    ("proc.name in (a, b", 19, "expected ',' or ')' to close the list opened at column 14"),
    ("proc.name in (a b)", 17, "expected ',' or ')' in a list"),
    ("proc.name = \"abc", 13, "unterminated quoted string"),
    ("a or or b", 6, "unexpected 'or', expected a field, a macro or '('"),
    ("proc.name = x)", 14, "unexpected ')' after a complete expression"),
    ("not", 4, "expected a field, a macro or '('"),
    ("proc.name foo x", 11, "expected an operator, found 'foo'"),
    ("proc.aname[2 = x", 13, "expected ']' to close the field argument opened at column 11"),
    ("val(proc.name) = x", 1, "val() is only allowed on the right side"),
    ("tolower(proc.name = x", 19, "expected ')' to close tolower("),
    (") and a", 1, "unexpected ')'"),
    ("a b", 3, "unexpected 'b' after a complete expression"),
    ("proc.name exists x", 18, "unexpected 'x' after a complete expression"),
    ("proc.name = val(proc.pname", 27, "expected ')' to close val("),
])
def test_syntax_errors(condition, column, message):
    with pytest.raises(RuleError) as info:
        parse(condition)
    err = info.value
    assert err.column == column
    assert message in err.reason
    # the message shows the condition with a caret under the fault
    caret_line = str(err).splitlines()[-1]
    assert caret_line.index("^") == column - 1


def test_error_names_file_line_and_item():
    from syswarden.core.errors import Location
    with pytest.raises(RuleError) as info:
        parse("proc.name = ", Location("r.yaml", 7, 14, "rule 'X'"))
    loc = info.value.location
    assert (loc.file, loc.line, loc.col, loc.item) == ("r.yaml", 7, 14 + 12, "rule 'X'")
    assert str(info.value).startswith("r.yaml:7:26 (rule 'X'): ")


# ---------------------------------------------------------------------------------------------
# Fuzz: any text compiles or fails with a RuleError, never anything else
# ---------------------------------------------------------------------------------------------

_pieces = st.sampled_from([
    "proc.name", "fd.name", "evt.type", "proc.aname[2]", "proc.aname", "fd.num", "fd.sip",
    "evt.arg.flags", "evt.arg[0]", "evt.rawarg.res", "container.mount.dest[/proc*]",
    "user.uid", "bogus.field", "macro1", "list1", "=", "!=", "<", ">=", "in", "contains",
    "icontains", "startswith", "endswith", "glob", "iglob", "regex", "pmatch", "intersects",
    "exists", "bcontains", "and", "or", "not", "(", ")", ",", "\"", "'", "bash", "/etc",
    "10.0.0.0/8", "1.2.3.4", "-1", "0x10", "[", "]", "val(", "tolower(", "len(", "b64(",
    "basename(", "toupper(", "*", "\\", "\n", "CAFE", "true", "[a-", "open", "openat",
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, max_size=12).map(" ".join))
def test_fuzz_token_soup(reg, text):
    _compile_or_rule_error(text, reg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_fuzz_any_text(reg, text):
    _compile_or_rule_error(text, reg)


_checks = st.builds(
    lambda f, op, v: f"{f} {op} {v}",
    st.sampled_from(["proc.name", "fd.name", "evt.type", "proc.aname[1]", "proc.aname",
                     "fd.num", "fd.sip", "fd.snet", "fd.ip", "fd.sport", "evt.arg.flags",
                     "evt.arg[0]", "evt.rawarg.flags", "evt.rawarg.name", "user.uid",
                     "evt.buffer", "container.mount.dest[/proc*]", "container.mount.dest",
                     "tolower(proc.name)", "len(fd.name)", "basename(fd.name)",
                     "b64(proc.cmdline)", "evt.is_open_read", "evt.res", "evt.rawres",
                     "proc.env[X]", "evt.dir"]),
    st.sampled_from([s for op in OPERATORS if op.kind is not Kind.UNARY for s in op.spelled]),
    st.sampled_from(["x", "3", "-1", "0x10", "true", "/etc", "/etc/*", "10.0.0.0/8",
                     "10.1.2.3", "(a, 3, /etc)", "(10.0.0.0/8, 1.2.3.4)", "()", "CAFE",
                     "val(proc.pname)", "val(fd.num)", "O_RDONLY", "'a b'", "<", ">"]))
_conditions = st.recursive(
    _checks | st.sampled_from(["fd.name exists", "macro1"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join),
        inner.map(lambda c: f"not ({c})")),
    max_leaves=6)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_conditions)
def test_fuzz_compiled_conditions_never_raise_on_events(reg, ev, text):
    """Whatever compiles evaluates to a bool on real-looking events, never an exception."""
    try:
        fn = compile_condition(text, reg, macros={"macro1": "proc.name = bash"})
    except RuleError:
        return
    events = [ev(), ev("connect", sip="10.1.2.3", sport=443, res=0),
              ev("openat", name="/etc/shadow", args={"flags": 0o1101}),
              ev("write", args={"data": b"\x00abc"}, res=4, container="abcdef123456",
                 mounts=["/proc"], env=["X=YWJj"]),
              ev("execve", proc="sh", res=-2, uid=0)]
    for e in events:
        assert fn(e) in (True, False)


def _compile_or_rule_error(text, reg):
    try:
        fn = compile_condition(text, reg, lists={"list1": ["a", "list2"], "list2": ["b"]},
                               macros={"macro1": "proc.name = bash"})
    except RuleError:
        return
    from syswarden.core.event import Event
    # a compiled filter evaluates to a bool on an event with no state at all
    assert fn(Event("openat")) in (True, False)


@pytest.mark.parametrize("depth", [50, 150, 3000])
def test_deep_nesting_compiles_or_fails_cleanly(reg, depth):
    text = "(" * depth + "proc.name = x" + ")" * depth
    text2 = "not " * depth + "proc.name = x"
    for t in (text, text2):
        try:
            fn = compile_condition(t, reg)
        except RuleError as exc:
            assert "nested" in exc.message
        else:
            from syswarden.core.event import Event
            assert fn(Event("openat")) in (True, False)
