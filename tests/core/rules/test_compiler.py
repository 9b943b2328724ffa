"""Condition semantics: ``(condition, event, expected)`` tables and load-time type errors.

Events are described by keyword arguments of the ``ev`` builder (conftest): the process name
and its ancestors, the fd, arguments, a container with its mounts.
"""

from __future__ import annotations

import pytest
from syswarden.core.errors import RuleError
from syswarden.core.event import Event
from syswarden.core.rules.compiler import compile_condition
from syswarden.core.rules.operators import OPERATORS, Kind

O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_CLOEXEC = 1, 2, 0o100, 0o1000, 0o2000000

OPEN_ETC = dict(type="openat", name="/etc/shadow", args={"flags": 0, "dirfd": -100})
OPEN_W = dict(type="openat", name="/tmp/x.sh",
              args={"flags": O_WRONLY | O_CREAT | O_TRUNC, "mode": 0o755})
CONNECT = dict(type="connect", sip="10.1.2.3", sport=443, name=None, res=0)
CONNECT6 = dict(CONNECT, sip="2001:db8::5")
CONNECT6_SAME_INT = dict(CONNECT, sip="::a01:203")       # the integer of 10.1.2.3
EXEC = dict(type="execve", proc="curl", parent="sh", grandparent="nginx", res=0,
            cmdline=["-s", "http://example.org/x.sh"])
CTR = dict(type="openat", name="/etc/passwd", args={"flags": 0}, container="abcdef123456",
           mounts=["/data", "/proc", "/var/run/docker.sock"])

CASES = [
    # equality, inequality, the == spelling
    ("proc.name = cat", OPEN_ETC, True),
    ("proc.name == cat", OPEN_ETC, True),
    ("proc.name = bash", OPEN_ETC, False),
    ("proc.name != bash", OPEN_ETC, True),
    ("proc.name != cat", OPEN_ETC, False),
    ("evt.type = openat", OPEN_ETC, True),
    ("evt.type in (open, openat, openat2)", OPEN_ETC, True),
    ("evt.type != openat", OPEN_ETC, False),
    ("not evt.type = execve", OPEN_ETC, True),
    # precedence: not > and > or
    ("proc.name = x or proc.name = cat and fd.name = /etc/shadow", OPEN_ETC, True),
    ("(proc.name = x or proc.name = cat) and fd.name = /nope", OPEN_ETC, False),
    ("not proc.name = x and proc.name = cat", OPEN_ETC, True),
    ("not (proc.name = cat and fd.name = /nope)", OPEN_ETC, True),
    # strings
    ("fd.name startswith /etc/", OPEN_ETC, True),
    ("fd.name endswith shadow", OPEN_ETC, True),
    ("fd.name contains tc/sh", OPEN_ETC, True),
    ("fd.name icontains ETC/SHA", OPEN_ETC, True),
    ("fd.name contains ETC", OPEN_ETC, False),
    ("fd.name glob /etc/*", OPEN_ETC, True),
    # Falco's glob is fnmatch without FNM_PATHNAME: * and ? cross /
    ("fd.name glob /*", OPEN_ETC, True),
    ("fd.name glob '*/shadow'", OPEN_ETC, True),
    ("fd.name glob '/etc?shadow'", OPEN_ETC, True),
    ("fd.name glob '/etc/\\*'", OPEN_ETC, False),       # a backslash escapes: a literal *
    ("fd.name glob '/etc/\\shadow'", OPEN_ETC, True),   # \s is s
    ("fd.name glob '*../*../*'", dict(OPEN_ETC, name="/etc/../etc/../etc/shadow"), True),
    ("fd.name glob '*../*../*'", dict(OPEN_ETC, name="/etc/../etc/shadow"), False),
    ("fd.name pmatch (/*/shadow)", OPEN_ETC, True),
    ("fd.name pmatch (/*)", dict(OPEN_ETC, name="/etc/x/y"), True),  # pmatch: by component
    ("fd.name pmatch (/e*/y)", dict(OPEN_ETC, name="/etc/x/y"), False),
    ("fd.name glob '/etc/sh?dow'", OPEN_ETC, True),
    ("fd.name glob '/etc/[rs]hadow'", OPEN_ETC, True),
    ("fd.name glob '/etc/[]s]hadow'", OPEN_ETC, True),    # a first ] is a class member
    ("fd.name glob '/etc/[!]s]hadow'", OPEN_ETC, False),
    ("fd.name iglob /ETC/SHA*", OPEN_ETC, True),
    ("fd.name regex '/etc/[a-z]+'", OPEN_ETC, True),
    ("fd.name regex 'etc'", OPEN_ETC, False),             # regex is a full match
    ("fd.name pmatch (/etc, /usr/bin)", OPEN_ETC, True),
    ("fd.name pmatch (/et)", OPEN_ETC, False),            # prefix by path component
    ("fd.name pmatch (/etc/shadow)", OPEN_ETC, True),
    ("fd.name pmatch (/e*)", OPEN_ETC, True),             # globs in pmatch (Falco 0.36)
    ("fd.name in (/etc/shadow, /etc/gshadow)", OPEN_ETC, True),
    ("fd.name in (\"/etc/shadow\")", OPEN_ETC, True),
    ("fd.name intersects (/etc/shadow, x)", OPEN_ETC, True),
    ("fd.name in ()", OPEN_ETC, False),
    ("proc.cmdline contains \"http://example\"", EXEC, True),
    ("proc.cmdline = \"curl -s http://example.org/x.sh\"", EXEC, True),
    # numbers
    ("fd.num >= 0", OPEN_ETC, True),
    ("fd.num < 3", OPEN_ETC, False),
    ("fd.num <= 3 and fd.num > 2", OPEN_ETC, True),
    ("fd.num = 0x3", OPEN_ETC, True),
    ("fd.num in (1, 2, 3)", OPEN_ETC, True),
    ("user.uid = 1000", OPEN_ETC, True),
    ("evt.rawres >= 0", OPEN_ETC, True),
    ("evt.rawres < 0", dict(OPEN_ETC, res=-2), True),
    ("evt.res = ENOENT", dict(OPEN_ETC, res=-2), True),
    ("evt.res = SUCCESS", OPEN_ETC, True),
    ("evt.failed = true", dict(OPEN_ETC, res=-13), True),
    # booleans
    ("evt.is_open_read = true", OPEN_ETC, True),
    ("evt.is_open_write = true", OPEN_ETC, False),
    ("evt.is_open_write = true", OPEN_W, True),
    ("evt.is_open_exec = true", OPEN_W, True),
    ("evt.is_open_exec = true", dict(OPEN_W, args={"flags": O_WRONLY | O_CREAT, "mode": 0o644}),
     False),
    # arguments rendered as Falco prints them, raw values
    ("evt.arg.flags contains O_TRUNC", OPEN_W, True),
    ("evt.arg.flags contains O_RDONLY", OPEN_W, False),
    ("evt.arg.flags = O_TRUNC|O_CREAT|O_WRONLY", OPEN_W, True),
    ("evt.arg.flags = O_RDONLY", OPEN_ETC, True),
    ("evt.arg[2] = /etc/shadow", OPEN_ETC, True),             # openat exit: fd, dirfd, name
    ("evt.arg.name = /etc/shadow", OPEN_ETC, True),
    ("evt.rawarg.flags = 577", OPEN_W, True),
    ("evt.rawarg.flags > 1", OPEN_W, True),
    # evt.arg[N]: Falco's event, exit parameters then enter ones (socket: fd, domain, ...)
    ("evt.arg[1] = AF_PACKET", dict(type="socket", args={"domain": 17}, res=4), True),
    ("evt.arg[0] = AF_PACKET", dict(type="socket", args={"domain": 17}, res=4), False),
    ("evt.arg.request = PTRACE_ATTACH", dict(type="ptrace", args={"request": 16, "pid": 1},
                                             res=0), True),
    ("evt.arg.nstype contains CLONE_NEWNS", dict(type="setns", args={"nstype": 0x20000},
                                                 res=0), True),
    ("evt.arg.nonexistent = x", OPEN_ETC, False),
    # direction: one exit event stands for both
    ("evt.dir = <", OPEN_ETC, True),
    ("evt.dir = >", OPEN_ETC, True),
    ("evt.dir != <", OPEN_ETC, False),
    ("evt.type = openat and evt.dir=<", OPEN_ETC, True),
    # unknown values: every comparison is false, != included; not flips it
    ("proc.unknown_here = x", OPEN_ETC, False),
    ("proc.unknown_here != x", OPEN_ETC, False),
    ("not proc.unknown_here = x", OPEN_ETC, True),
    ("proc.unknown_here in (x, y)", OPEN_ETC, False),
    ("proc.unknown_here exists", OPEN_ETC, False),
    ("fd.name exists", OPEN_ETC, True),
    ("proc.unknown_here startswith x", OPEN_ETC, False),
    ("fd.num > 0", dict(type="execve", res=0), False),         # no fd
    ("fd.num < 0", dict(type="execve", res=0), False),
    ("tolower(proc.unknown_here) = x", OPEN_ETC, False),
    # multi-valued fields: any element
    ("proc.aname = sshd", OPEN_ETC, True),
    ("proc.aname = bash", OPEN_ETC, True),
    ("proc.aname = cat", OPEN_ETC, False),                     # ancestors, not the process
    ("proc.aname in (nginx, httpd)", EXEC, True),
    ("proc.aname[1] = sh", EXEC, True),
    ("proc.aname[2] = nginx", EXEC, True),
    ("proc.aname[2] = sh", EXEC, False),
    ("proc.aname[9] = sh", EXEC, False),
    ("proc.aname exists", EXEC, True),
    ("container.mount.dest[/proc*] != \"\"", CTR, True),
    ("container.mount.dest[/var/run/docker.sock] = /var/run/docker.sock", CTR, True),
    ("container.mount.dest[/etc*] exists", CTR, False),
    ("container.mount.dest[0] = /data", CTR, True),
    ("container.mount.dest = /proc", CTR, True),
    ("container.mount.dest startswith /var", CTR, True),
    ("container.mount.dest pmatch (/var/run)", CTR, True),
    # IP addresses and networks
    ("fd.sip = 10.1.2.3", CONNECT, True),
    ("fd.sip = \"10.1.2.3\"", CONNECT, True),
    ("fd.sip != 10.1.2.4", CONNECT, True),
    ("fd.sip in (10.0.0.0/8, 192.168.0.1)", CONNECT, True),
    ("fd.sip in (\"172.16.0.0/12\", \"192.168.0.0/16\")", CONNECT, False),
    ("fd.snet = 10.1.0.0/16", CONNECT, True),
    ("fd.snet != \"127.0.0.0/8\"", CONNECT, True),
    ("fd.snet in (127.0.0.0/8, 10.0.0.0/8)", CONNECT, True),
    ("fd.sport in (80, 443)", CONNECT, True),
    ("fd.sip in (\"2001:db8::/32\", 10.0.0.0/8)", CONNECT6, True),
    ("fd.sip in (\"2001:db8::5\")", CONNECT6, True),
    ("fd.sip in (\"2001:db9::/32\", 10.0.0.0/8, 2.0.0.0/8)", CONNECT6, False),
    ("fd.sip in (10.0.0.0/8, 10.1.2.3)", CONNECT6_SAME_INT, False),    # versions never mix
    ("fd.sip in (\"::/96\", \"::a01:203\")", CONNECT, False),
    ("fd.sip in (\"::/96\")", CONNECT6_SAME_INT, True),
    ("fd.ip = 10.0.0.1", CONNECT, True),                       # either end
    ("fd.ip != 10.0.0.1", CONNECT, False),                     # neither end
    ("fd.ip != 10.9.9.9", CONNECT, True),
    ("fd.ip in (10.1.0.0/16)", CONNECT, True),
    ("proc.aname != sshd", OPEN_ETC, False),                   # no ancestor is sshd: false
    ("fd.sport > 1024", CONNECT, False),
    # transformers and val()
    ("tolower(proc.name) = cat", dict(OPEN_ETC, proc="CAT"), True),
    ("toupper(proc.name) = CAT", OPEN_ETC, True),
    ("basename(fd.name) = shadow", OPEN_ETC, True),
    ("basename(fd.name) = \"\"", dict(OPEN_ETC, name="/etc/"), True),
    ("len(fd.name) = 11", OPEN_ETC, True),
    ("len(proc.aname) = 2", OPEN_ETC, True),                   # a list's length
    ("b64(proc.env[X]) = hello", dict(OPEN_ETC, env=["X=aGVsbG8="]), True),
    ("tolower(basename(fd.name)) = shadow", dict(OPEN_ETC, name="/etc/SHADOW"), True),
    ("proc.name = val(proc.pname)", dict(OPEN_ETC, proc="bash", parent="bash"), True),
    ("proc.name = val(proc.pname)", OPEN_ETC, False),
    ("proc.name != val(proc.pname)", OPEN_ETC, True),
    ("proc.name = val(proc.unknown_here)", OPEN_ETC, False),
    ("tolower(proc.name) = tolower(proc.pname)", dict(OPEN_ETC, proc="Bash", parent="BASH"),
     True),
    ("proc.aname = val(proc.name)", dict(OPEN_ETC, proc="sshd"), True),
    # bytes
    ("evt.buffer bcontains 414243", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ("evt.buffer bstartswith 7878", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ("evt.buffer bcontains 00", dict(type="write", args={"data": b"xxABCxx"}, res=7), False),
    ("evt.buffer contains ABC", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ("evt.buffer = xxABCxx", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ("evt.buffer != xxABCxx", dict(type="write", args={"data": b"xxABCxx"}, res=7), False),
    ("evt.buffer in (a, xxABCxx)", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ('evt.buffer = "xx\\x41BCxx"', dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    ('evt.buffer contains "\\x00a"', dict(type="write", args={"data": b"\x00abc"}, res=4),
     True),                                                # a byte buffer may hold a NUL
    ('proc.name = "\\x63\\x61t"', OPEN_ETC, True),         # \xHH: exactly two digits
    ('proc.name = "\\x6341"', dict(OPEN_ETC, proc="c41"), True),
    ("evt.buffer startswith xxA", dict(type="write", args={"data": b"xxABCxx"}, res=7), True),
    # quoting and escapes
    ("proc.cmdline contains \"a b\"", dict(EXEC, cmdline=["a b"]), True),
    ("proc.cmdline contains 'it\\'s'", dict(EXEC, cmdline=["it's"]), True),
    ("proc.cmdline contains \"say \\\"hi\\\"\"", dict(EXEC, cmdline=['say "hi"']), True),
    # containers and the host
    ("container.id != host", CTR, True),
    ("container.id = host", OPEN_ETC, True),
    ("container.image.repository = nginx", CTR, True),
    # event fields
    ("evt.num = 0", OPEN_ETC, False),                         # Falco's never_true idiom
    ("evt.num > 0", OPEN_ETC, False),                         # unnumbered: unknown
    ("evt.rawtime = 1700000000123456789", OPEN_ETC, True),
    ("evt.source = syscall", OPEN_ETC, True),
    ("evt.args contains \"name=/etc/shadow\"", OPEN_ETC, True),
    ("evt.arg[0] = 3", OPEN_ETC, True),                        # fd
    ("evt.arg[1] = -100", OPEN_ETC, True),                     # dirfd (AT_FDCWD)
    ("evt.arg[1] = /etc/shadow", OPEN_ETC, False),             # not the enter event's name
]


@pytest.mark.parametrize("condition, event, expected", CASES,
                         ids=[f"{i}:{c[0][:40]}" for i, c in enumerate(CASES)])
def test_condition(reg, ev, condition, event, expected):
    fn = compile_condition(condition, reg)
    assert fn(ev(**event)) is expected


def test_lists_and_macros(reg, ev):
    lists = {"shells": ["bash", "sh"], "more": ["zsh", "shells", "\"quoted name\""]}
    macros = {"is_shell": "proc.name in (more)", "shell_or_cat": "is_shell or proc.name = cat"}
    assert compile_condition("shell_or_cat", reg, lists, macros)(ev(proc="cat"))
    assert compile_condition("is_shell", reg, lists, macros)(ev(proc="sh"))
    assert compile_condition("is_shell", reg, lists, macros)(ev(proc="quoted name"))
    assert not compile_condition("is_shell", reg, lists, macros)(ev(proc="cat"))
    # a quoted item is a value, not a list name
    assert not compile_condition("proc.name in (\"shells\")", reg, lists)(ev(proc="sh"))
    assert compile_condition("proc.name in (\"shells\")", reg, lists)(ev(proc="shells"))
    # a bare list name after a list operator
    assert compile_condition("proc.name in shells", reg, lists)(ev(proc="bash"))


@pytest.mark.parametrize("condition, column, message", [
    ("proc.nme = bash", 1, "unknown field 'proc.nme'"),
    ("fd.num = abc", 10, "fd.num is numeric (int64); 'abc' is not a number"),
    ("fd.num in (1, two)", 15, "'two' is not a number"),
    ("user.uid > root", 12, "not a number"),
    ("fd.num contains 3", 1, "operator 'contains' cannot be used with fd.num (int64)"),
    ("fd.sip startswith 10", 1, "operator 'startswith' cannot be used with fd.sip"),
    ("fd.sip = 10.0.0.300", 10, "is not an IP address or network"),
    ("evt.is_open_read = yes", 20, "is a boolean; 'yes' is not true or false"),
    ("evt.is_open_read > true", 1, "operator '>' cannot be used"),
    ("proc.aname[x] = a", 1, "needs a number in brackets, not 'x'"),
    ("proc.name[2] = a", 1, "field proc.name takes no argument"),
    ("evt.arg = a", 1, "field evt.arg needs an argument"),
    ("fd.name regex '('", 15, "invalid regular expression"),
    ("evt.buffer bcontains XYZ", 22, "needs hexadecimal bytes"),
    ("undefined_macro", 1, "undefined macro 'undefined_macro'"),
    ("mylist", 1, "'mylist' is a list, not a macro"),
    ("fd.num pmatch (/a)", 1, "operator 'pmatch' needs a string field"),
    ("fd.num < val(fd.name)", 10, "cannot compare fd.num (int64) with fd.name (string)"),
    ("tolower(fd.num) = 1", 1, "tolower() needs a string field"),
    # Falco's compile-time checks (libs filter_compiler.ut.cpp): operators by field type ...
    ("evt.buffer icontains abc", 1, "operator 'icontains' cannot be used with evt.buffer"),
    ("evt.buffer glob 'a*'", 1, "operator 'glob' cannot be used with evt.buffer"),
    ("evt.buffer regex '.*'", 1, "operator 'regex' cannot be used with evt.buffer"),
    ("evt.buffer < 1", 1, "operator '<' cannot be used with evt.buffer"),
    ("fd.name bcontains 303000", 1, "operator 'bcontains' cannot be used with fd.name"),
    ("fd.name bstartswith 303000", 1, "operator 'bstartswith' cannot be used with fd.name"),
    ("fd.num contains 1", 1, "operator 'contains' cannot be used with fd.num"),
    ("fd.num glob 1", 1, "operator 'glob' cannot be used with fd.num"),
    ("evt.is_open_read glob true", 1, "operator 'glob' cannot be used"),
    ("fd.sip regex '.*'", 1, "operator 'regex' cannot be used with fd.sip"),
    ("fd.snet contains 10.0.0.0/8", 1, "operator 'contains' cannot be used with fd.snet"),
    # ... float literals on numeric fields ...
    ("fd.num = 1.0", 10, "'1.0' is not a number"),
    ("fd.num in (1, 2.5)", 15, "'2.5' is not a number"),
    # ... a NUL byte in a string value, a truncated \x escape ...
    ('proc.name = "\\x00"', 13, "a NUL byte cannot be in a value compared with proc.name"),
    ('proc.name contains "a\\x00"', 20, "a NUL byte"),
    ('fd.name pmatch ("\\x00")', 17, "a NUL byte"),
    ('proc.name glob "\\x00?"', 16, "a NUL byte"),
    ('proc.name = "\\x4"', 14, "\\x needs two hexadecimal digits"),
    ('proc.name = "a\\x"', 15, "\\x needs two hexadecimal digits"),
    ('proc.name = "\\xgg"', 14, "\\x needs two hexadecimal digits"),
    ('evt.buffer bcontains "\\x00"', 22, "needs hexadecimal bytes"),
    # ... and val(): a field only, not with regex, of the same kind, no network
    ("proc.name = val(tolower(proc.pname))", 17, "val() takes a field"),
    ("tolower(proc.name) = tolower(val(proc.pname))", 30, "val() is only allowed on the right"),
    ("proc.name regex val(proc.pname)", 17, "val() cannot be used with 'regex'"),
    ("proc.name = val(evt.is_open_read)", 13, "cannot compare proc.name (string) with "
     "evt.is_open_read (bool)"),
    ("fd.snet = val(fd.sip)", 11, "val() cannot be used with a network field (fd.snet)"),
    ("fd.sip = val(fd.name)", 10, "cannot compare fd.sip (ipaddr) with fd.name (string)"),
])
def test_compile_errors(reg, condition, column, message):
    with pytest.raises(RuleError) as info:
        compile_condition(condition, reg, lists={"mylist": ["a"]})
    assert message in info.value.reason
    assert info.value.column == column


def test_recursive_macro_is_an_error(reg):
    with pytest.raises(RuleError, match="refers to itself"):
        compile_condition("a", reg, macros={"a": "b and proc.name = x", "b": "a"})


def test_unknown_event_type_is_a_located_warning(reg):
    from syswarden.core.rules.compiler import Compiler, Origin
    comp = Compiler(reg)
    comp.resolve_text("evt.type in (openat, bogus)", Origin("evt.type in (openat, bogus)"))
    assert [w.reason for w in comp.warnings] == ["unknown event type 'bogus'"]
    assert comp.warnings[0].column == 22


def test_readers_are_bound_once(reg, ev):
    """The compiled filter holds its readers: no registry lookups at evaluation time."""
    fn = compile_condition("proc.name = cat and fd.name startswith /etc", reg)
    event = ev(name="/etc/shadow")
    reg_copy_defs = list(reg)
    assert fn(event)
    assert list(reg) == reg_copy_defs


def test_event_without_any_state(reg):
    fn = compile_condition("proc.name = x or fd.name = y or container.id = host", reg)
    assert fn(Event("openat")) is True   # the test container.id reads 'host' without state


# ---------------------------------------------------------------------------------------------
# Every field x operator x value: a RuleError at load, or a bool per event, never an exception
# ---------------------------------------------------------------------------------------------

_FIELDS = ["proc.name", "fd.name", "evt.type", "proc.aname[1]", "proc.aname", "fd.num",
           "fd.sip", "fd.snet", "fd.ip", "fd.sport", "evt.arg.flags", "evt.arg[0]",
           "evt.rawarg.flags", "evt.rawarg.name", "user.uid", "evt.buffer",
           "container.mount.dest[/proc*]", "container.mount.dest", "tolower(proc.name)",
           "len(fd.name)", "basename(fd.name)", "b64(proc.cmdline)", "evt.is_open_read",
           "evt.res", "evt.rawres", "proc.env[X]", "evt.dir"]
_OPS = [spelling for op in OPERATORS for spelling in op.spelled]   # every one, `==` too
_VALUES = ["x", "3", "-1", "0x10", "true", "/etc", "/etc/*", "10.0.0.0/8", "10.1.2.3",
           "(a, 3, /etc)", "(10.0.0.0/8, 1.2.3.4)", "()", "CAFE", "val(proc.pname)",
           "val(fd.num)", "O_RDONLY", "'a b'", "<", ">", "val(proc.aname)", "val(fd.sip)"]


def test_every_field_operator_value_combination(reg, ev):
    events = [ev(), ev("connect", sip="10.1.2.3", sport=443, res=0),
              ev("openat", name="/etc/shadow", args={"flags": 0o1101}),
              ev("write", args={"data": b"\x00abc"}, res=4, container="abcdef123456",
                 mounts=["/proc"], env=["X=YWJj"]),
              ev("execve", proc="sh", res=-2, uid=0),
              ev("openat", args={"flags": "not a number", "name": 5}),   # a source's oddity
              Event("openat")]
    compiled = failed = 0
    for field in _FIELDS:
        for op in _OPS:
            for value in ([""] if OPERATORS[op].kind is Kind.UNARY else _VALUES):
                text = f"{field} {op} {value}".strip()
                try:
                    fn = compile_condition(text, reg)
                except RuleError:
                    failed += 1
                    continue
                compiled += 1
                for e in events:
                    assert fn(e) in (True, False), text
    assert compiled > 1000 and failed > 1000


@pytest.mark.parametrize("condition, event, expected", [
    ("proc.name < dog", dict(proc="cat"), True),               # strings compare as strings
    ("proc.name > dog", dict(proc="cat"), False),
    ("evt.rawarg.name > /a", dict(type="openat", name="/etc/x", args={"flags": 0}), True),
    ("evt.rawarg.flags > x", dict(type="openat", name="/e", args={"flags": 1}), False),
])
def test_ordering_of_strings(reg, ev, condition, event, expected):
    assert compile_condition(condition, reg)(ev(**event)) is expected
