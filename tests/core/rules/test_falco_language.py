"""The condition language against falcosecurity/libs' own tests (userspace/libsinsp/test:
``filterchecks/cmp_operator_modifiers.cpp``, ``filter_transformer.ut.cpp``,
``filter_compiler.ut.cpp``, ``filter_escaping.ut.cpp``): each case is the behaviour one of them
asserts, written as our own table of ``(condition, expected)`` on one event.  Compile-time
refusals are in test_compiler.py (``test_compile_errors``), outputs in test_output.py.
"""

from __future__ import annotations

import pytest
from syswarden.core.errors import RuleError
from syswarden.core.rules.compiler import compile_condition


@pytest.fixture
def myexe(ev):
    """Falco's test event: an execve of ``myexe``."""
    return ev("execve", proc="myexe", res=0)


# -- list modifiers: op oneof|anyof|allof (list) ---------------------------------------------

MODIFIERS = [
    ("proc.name == oneof (myexe, bash)", True),
    ("proc.name == oneof (myexe)", True),
    ("proc.name == oneof (bash, sh)", False),
    ("proc.name == oneof (myexe, myexe)", False),          # items are counted, not a set
    ("proc.name == anyof (myexe, bash)", True),
    ("proc.name == anyof (bash, sh)", False),
    ("proc.name == anyof (myexe, myexe)", True),
    ("proc.name == allof (myexe)", True),
    ("proc.name == allof (myexe, bash)", False),
    ("proc.name == allof (myexe, myexe)", True),
    ("proc.name != oneof (myexe, myexe, bash)", True),
    ("proc.name != oneof (myexe, myexe)", False),
    ("proc.name != oneof (bash, sh)", False),
    ("proc.name != anyof (myexe, bash)", True),
    ("proc.name != allof (bash, sh)", True),
    ("proc.name != allof (myexe, bash)", False),
    ("proc.name contains oneof (myex, bash)", True),
    ("proc.name contains oneof (my, exe)", False),
    ("proc.name contains anyof (my, exe)", True),
    ("proc.name contains allof (my, exe)", True),
    ("proc.name contains allof (myex, bash)", False),
    ("proc.name icontains oneof (MYEX, BASH)", True),
    ("proc.name icontains allof (MY, EXE)", True),
    ("proc.name startswith oneof (my, mye)", False),
    ("proc.name startswith allof (my, mye)", True),
    ("proc.name endswith oneof (exe, sh)", True),
    ("proc.name endswith allof (exe, yexe)", True),
    ("proc.name glob oneof (my*, *exe)", False),
    ("proc.name glob allof (my*, *exe)", True),
    ("proc.name iglob anyof (MY*, BASH)", True),
    ("proc.name regex oneof (my.*, b.*)", True),
    ("proc.name regex allof (my.*, .*exe)", True),
    ("proc.name regex allof (my.*, b.*)", False),
    ("toupper(proc.name) == oneof (MYEXE, BASH)", True),
    ("toupper(proc.name) != allof (MYEXE, BASH)", False),
    ("proc.name == oneof (myexe) and proc.name != allof (bash, sh)", True),
    ("proc.name == anyof (myexe, bash) or proc.name != oneof (myexe)", True),
    ("not proc.name == oneof (bash)", True),
    # an empty list: never true, whatever the modifier and operator
    ("proc.name == oneof ()", False), ("proc.name == anyof ()", False),
    ("proc.name == allof ()", False), ("proc.name != oneof ()", False),
    ("proc.name != anyof ()", False), ("proc.name != allof ()", False),
    # a list's name stands for its items (counted too)
    ("proc.name == oneof (names)", True), ("proc.name == anyof names", True),
    ("proc.name == allof names", False), ("proc.name == oneof (names, myexe)", False),
    # without a list after it, a modifier's word is a value
    ("proc.name != oneof", True),
]


@pytest.mark.parametrize("condition, expected", MODIFIERS)
def test_list_modifiers(reg, myexe, condition, expected):
    lists = {"names": ["myexe", "bash"]}
    assert compile_condition(condition, reg, lists=lists)(myexe) is expected


@pytest.mark.parametrize("condition, message", [
    ("fd.num > anyof (1, 2)", "after a complete expression"),      # ordering: no modifier
    ("proc.name in oneof (a)", "expected"),                        # a list operator: none
    ("fd.sip contains anyof (10.0.0.1)", "operator 'contains' cannot be used with fd.sip"),
    ("fd.sip == anyof (10.0.0.300)", "is not an IP address"),
])
def test_list_modifier_errors(reg, condition, message):
    with pytest.raises(RuleError, match=message):
        compile_condition(condition, reg)


def test_ip_fields_take_modifiers_with_equality(reg, ev):
    conn = ev("connect", sip="10.1.2.3", sport=443, res=0)
    assert compile_condition("fd.sip == anyof (10.0.0.0/8, 192.168.0.1)", reg)(conn)
    assert not compile_condition("fd.sip == allof (10.0.0.0/8, 192.168.0.1)", reg)(conn)
    assert compile_condition("fd.sip != allof (192.168.0.1, 172.16.0.0/12)", reg)(conn)


def test_a_modifier_as_an_exception_comparator(tmp_path, reg, ev):
    from syswarden.core.rules.engine import RuleEngine
    path = tmp_path / "r.yaml"
    path.write_text("- rule: R\n  desc: d\n  condition: evt.type = openat\n  output: o\n"
                    "  priority: INFO\n  exceptions:\n    - name: e\n      fields: fd.name\n"
                    "      comps: startswith anyof\n      values: [/etc, /usr]\n")
    eng = RuleEngine.load([str(path)], reg)
    assert eng.check(ev("openat", name="/etc/x")) == []
    assert [a.rule for a in eng.check(ev("openat", name="/tmp/x"))] == ["R"]


# -- transformers of several arguments: join, concat, getopt ---------------------------------

@pytest.fixture
def run(ev):
    """Falco's test event: /tmp/file_to_run opened (fd.name, fd.directory /tmp)."""
    return ev("openat", name="/tmp/file_to_run", args={"flags": 0})


JOIN_CONCAT = [
    ('join(fd.name, (fd.name,fd.directory)) = /tmp/file_to_run/tmp/file_to_run/tmp', True),
    ('join("-", (fd.name,fd.directory)) = /tmp/file_to_run-/tmp', True),
    ('join("-", ("aaa","bbb")) = aaa-bbb', True),
    ('join("->", ("aaa")) = aaa', True),
    ('join("->", (fd.name, "aaa", fd.directory)) = /tmp/file_to_run->aaa->/tmp', True),
    ('join("->", ( "aaa", toupper(fd.name))) = aaa->/TMP/FILE_TO_RUN', True),
    ('join("-", (fd.directory, join("->", ( "aaa", toupper(fd.name))))) = '
     '/tmp-aaa->/TMP/FILE_TO_RUN', True),
    ('join(",", ("aaa","bbb")) = "aaa,bbb"', True),
    ('join(",", ("aaa","bbb")) = "aaa-bbb"', False),
    ('join(",", (fd.num, fd.num)) = "3,3"', True),
    ('join(",", ()) = ""', True),
    ('join(",", proc.aname) = "bash,sshd"', True),            # a multi-valued field is a list
    ('concat(fd.name, fd.directory) = /tmp/file_to_run/tmp', True),
    ('concat("aaa", "bbb", "ccc") = aaabbbccc', True),
    ('concat(toupper(fd.name), "aaa") = /TMP/FILE_TO_RUNaaa', True),
    ('concat(fd.directory, concat("aaa", toupper(fd.name))) = /tmpaaa/TMP/FILE_TO_RUN', True),
    ('toupper(join("-", (fd.name, fd.directory))) = /TMP/FILE_TO_RUN-/TMP', True),
    ('len(join("-", (fd.name, fd.directory))) = 21', True),
    ('b64(join("W", ("YWFhL", "JiYg"))) = "aaa-bbb"', True),
    ('toupper(concat(fd.name, fd.directory)) startswith /TMP', True),
    ('len(concat(fd.name, fd.directory)) < 21', True),
    ('fd.directory = concat("/t", "mp")', True),                # on the right side too
    ('join("-", (fd.name, container.name)) = x', False),       # an unknown value: false
]


@pytest.mark.parametrize("condition, expected", JOIN_CONCAT)
def test_join_and_concat(real_registry, run, condition, expected):
    assert compile_condition(condition, real_registry)(run) is expected


GETOPT = [
    ('getopt(("-n",""), "n") intersects ("n")', True),
    ('getopt(("-t", "hello"), "t:") intersects ("t", "hello")', True),
    ('getopt(("-nt", "hello"), "nt:") intersects ("n", "t", "hello")', True),
    ('getopt(("-thello"), "t:") intersects ("t", "hello")', True),
    ('getopt(("-n", "--", "-t"), "nt:") intersects ("t")', False),     # -- ends the options
    ('getopt(("-x", "-n"), "n") intersects ("?", "n")', True),         # unknown: ?
    ('getopt(("-x", "-n"), "n") intersects ("x")', False),
    ('getopt(("-lpe", "/bin/sh"), "lp:e:") intersects ("l","p","e")', True),
    ('getopt(("-lpe", "/bin/sh"), "lpe:") intersects ("/bin/sh")', True),
    ('getopt(("arg1", "-n", "arg2"), "n") intersects ("n")', False),   # stops at a word
    ('getopt(("-", "-n"), "n") intersects ("n")', False),
    ('getopt(("-t"), "t:") intersects ("")', True),                    # missing argument
    ('getopt(("-t"), "t:") intersects ("t")', False),
    ('getopt(("-t"), "t:") intersects ("?")', False),
    ('getopt(("--exec", "-n"), "n") intersects ("n")', True),          # long options skipped
    ('getopt(("--exec"), "e:") intersects ("e")', False),
    ('getopt(("-t", "-123"), "t:") intersects ("t", "-123")', True),
    ('getopt(("-n", "-t", "hello"), "nt:")[t] = hello', True),
    ('getopt(("-n", "-t", "hello"), "nt:")[n] = n', True),
    ('getopt(("-t", "v1", "-t", "v2"), "t:")[t] = v2', True),           # the last one
    ('getopt(("-t?"), "t:")[t] = ?', True),
    ('getopt(("-t:"), ":t:")[t] = :', True),
    ('getopt(("-t"), "t:")[t] = ""', True),
    ('getopt(("-t"), "t:")[t] = ?', False),
    ('getopt(("-n"), "nt:")[t] != ""', False),                          # no -t: unknown
    ('getopt(("-t", "v1", "-t"), "t:")[t] = ""', True),
    ('getopt(("-s", proc.name), "s:")[s] = curl', True),           # fields among the args
    ('getopt(("-x", proc.name), "s:") intersects (curl)', False),
]


@pytest.mark.parametrize("condition, expected", GETOPT)
def test_getopt(real_registry, ev, condition, expected):
    e = ev("execve", proc="curl", res=0, cmdline=["-s", "http://example.org/x.sh"])
    assert compile_condition(condition, real_registry)(e) is expected


@pytest.mark.parametrize("condition", [
    "join() = foo", 'join("-") = foo', 'join("-", "a", "b") = foo',
    'join(proc.aname, ("a", "b")) = foo', 'join(("a", "b"), ("a", "b")) = foo',
    'join(("a", "b"), "a") = foo', 'join("a", "b") = foo',
    "concat() = foo", 'concat("aaa") = foo', 'concat(proc.aname, "a") = foo',
    'concat(("a", "b"), "a") = foo', 'concat("a", ("a", "b")) = foo', 'concat(fd.num, "a") = x',
    'getopt() intersects ("n")', 'getopt(("a")) intersects ("n")',
    'getopt(("a"), "n", "extra") intersects ("n")', 'getopt("not_a_list", "n") intersects ("n")',
    'getopt(("-n"), ("n")) intersects ("n")', 'getopt(("-n"), "n")[""] = n',
    'getopt(("-n"), "n")[nt] = n', 'join("-", ("a"))[x] = a',
])
def test_transformer_arguments_refused(real_registry, condition):
    with pytest.raises(RuleError):
        compile_condition(condition, real_registry)


# -- field values (libs filterchecks/fd.cpp, filter_compiler.ut.cpp) -------------------------

def test_a_failed_open_has_fd_num_and_name_but_no_filename(real_registry):
    """Falco reads fd.num from the call (its result, a negative errno, for an open that made
    no fd) and fd.filename from the fd table (none for a failed open); fd.name and
    fd.directory from the event's arguments."""
    from syswarden.core.event import Event, FdInfo, Process
    e = Event("openat", res=-2, args={"name": "/home/file.txt", "flags": 0o102, "fd": -2})
    e.proc = Process(12, comm="cat")
    e.fd = FdInfo(-1, "file", "/home/file.txt")       # as the process enricher makes it
    check = lambda c: compile_condition(c, real_registry)(e)    # noqa: E731
    assert check("fd.num = -2") and check("fd.num < 0") and not check("fd.num >= 0")
    assert check("fd.name = /home/file.txt") and check("fd.directory = /home")
    assert not check("fd.filename exists") and not check("fd.filename = file.txt")
    e.fd, e.res = FdInfo(3, "file", "/home/file.txt"), 3
    assert check("fd.num = 3") and check("fd.filename = file.txt")


@pytest.mark.parametrize("condition, expected", [
    ("syscall.type = getcwd", True),
    ("tolower(syscall.type) = getcwd", True),
    ("toupper(syscall.type) = GETCWD", True),
    ("tolower(toupper(syscall.type)) = getcwd", True),
    ("tolower(syscall.type) = tolower(syscall.type)", True),
    ("toupper(syscall.type) = toupper(syscall.type)", True),
    ("evt.args = evt.args", False),                  # a constant, the text 'evt.args'
    ("evt.args = val(evt.args)", True),
    ("evt.type = getcwd or evt.type = openat", True),
])
def test_syscall_type_and_field_comparisons(real_registry, ev, condition, expected):
    e = ev("getcwd", res=-2, args={"res": -2, "path": "/test/dir"})
    assert compile_condition(condition, real_registry)(e) is expected


# -- syntax (libs filter_parser.ut.cpp) ------------------------------------------------------

@pytest.mark.parametrize("condition", [
    "  a", "(a)", "a and b and(c)", "(a)and(b)and(c)", "a or b or(c)", "(a)or(b)or(c)",
    "(a.a exists and b)", "a.a=1 or b.b=2 and c", "not(a)", "not not(a)", "not(not(a))",
    "not(a)and(not(b))", "not a.a exists", "a.b = not", "fd.name=*.log", "a.g in (1, 'a', b.c)",
    "a and notb", "notz and a and b", "macro and not_macro", "macro and and_macro",
    "macro and or_macro", "evt.arg[0] contains /bin", "evt.arg[a] contains /bin",
    "test.str = 0a!@#456:/\\.;!$%^&*[]{}|", "test.str = ''", "test.str[+0.25e+10] = a",
    "test.str['a aa'] = a", "test.str = 'mixed \"'", "((((((((((a))))))))))",
    "proc.name == oneof (cat, nginx)", "proc.name != allof names",
    'getopt(proc.args, "nt:")[t] = value', 'join("-", ()) = ""',
])
def test_falco_accepts(condition):
    from syswarden.core.rules.parser import parse
    parse(condition)


@pytest.mark.parametrize("condition", [
    "a andb", "aand b", "a and b and", "a and b not", "and a", "a or b or", "a not b", "anot b",
    "a andnot b", "(a)andnot(b)", "a ornot b", "evt.arg[] contains /bin", "a.b = b = 1",
    "(a.b = 1", "a.a invalidoperator xxx", "macro > 12", "a.g in ( 1 ,, , b)",
    "#a and b; a and b", "fd.name=/var/lo);g/httpd.log", "test.str = a,", "test.str = a=",
    "test.str = '", "test.str = missing start quote", "test.str = 'missing end quote",
    "test.str[] = testval", "test.str[[] = testval",
    "proc.name ==oneof (cat, nginx)", "proc.name == oneof(cat, nginx)",     # blanks required
    "proc.name startswith anyof(cat)", 'getopt(proc.args, "nt:")[] = value',
    'getopt(proc.args, "nt:")["t" = value', "toupper (proc.name) = X",
])
def test_falco_rejects(condition):
    from syswarden.core.rules.parser import parse
    with pytest.raises(RuleError):
        parse(condition)


# -- operators (libs filter_op_*.ut.cpp) -----------------------------------------------------

@pytest.mark.parametrize("condition, expected", [
    ("fd.name pmatch (/opt/dir)", True), ("fd.name pmatch (/opt/dir/subdir)", True),
    ("fd.name pmatch (/opt/dir2)", False), ("fd.name pmatch (/opt/dir, /opt/dir2)", True),
    ("fd.name pmatch (/opt/*)", True), ("fd.name pmatch (/opt/*/subdir)", True),
    ("fd.name pmatch (/opt/di?/subdir)", True), ("fd.name pmatch (/opt/dii?/subdir)", False),
    ("fd.name pmatch (/opt/di[r]/subdir)", True), ("fd.name pmatch (/opt/di[!r]/subdir)", False),
    ("fd.name pmatch (/opt/di/subdir)", False), ("fd.name pmatch (/opt/*/subdir2)", False),
    ("fd.name pmatch (/opt/*/*)", True), ("fd.name pmatch (/opt/*/*/subsubdir)", False),
    ("fd.name contains /dir", True), ("fd.name icontains /SUBDIR", True),
    ("fd.name icontains notthis", False),
])
def test_pmatch_and_contains(real_registry, ev, condition, expected):
    e = ev("openat", name="/opt/dir/subdir/file.txt", args={"flags": 0})
    assert compile_condition(condition, real_registry)(e) is expected


@pytest.mark.parametrize("condition, expected", [
    ("fd.num >= 0", False), ("fd.num > 0", False), ("fd.num < 0", True),
    ("fd.num > 4294967295", False), ("fd.num < -1", False), ("fd.num > -65535", True),
    ("evt.rawarg.fd < 0", True), ("evt.rawarg.fd > -65535", True),
])
def test_numeric_comparisons_on_a_failed_open(real_registry, condition, expected):
    from syswarden.core.event import Event, FdInfo, Process
    e = Event("open", res=-1, args={"fd": -1, "name": "/tmp/the_file", "flags": 0})
    e.proc, e.fd = Process(1, comm="init"), FdInfo(-1, "file", "/tmp/the_file")
    assert compile_condition(condition, real_registry)(e) is expected


@pytest.mark.parametrize("sip, condition, expected", [
    ("142.251.111.147", "fd.sip == 142.251.111.147", True),
    ("142.251.111.147", "fd.ip == 142.251.111.147", True),
    ("142.251.111.147", "fd.ip != 142.251.111.147", False),
    ("142.251.111.147", "fd.sip != 0:0:0:0:0:0:0:1", True),
    ("142.251.111.147", "fd.net == 142.251.0.0/16", True),
    ("142.251.111.147", "fd.net != 2001:db8:abcd:0012::0/64", True),
    ("142.251.111.147", "fd.net == 2001:db8:abcd:0012::0/64", False),
    ("142.251.111.147", "fd.sip == anyof (10.0.0.9, 142.251.111.147)", True),
    ("142.251.111.147", "fd.sip == allof (142.251.111.147, 10.0.0.9)", False),
    ("142.251.111.147", "fd.sip == oneof (10.0.0.9, 142.251.111.147)", True),
    ("142.251.111.147", "fd.sip != anyof (142.251.111.147)", False),
    ("142.251.111.147", "fd.sip != allof (10.0.0.9, 192.168.0.1)", True),
    ("2001:4860:4860::8888", "fd.sip == 2001:4860:4860::8888", True),
    ("2001:4860:4860::8888", "fd.sip != 127.0.0.1", True),
    ("2001:4860:4860::8888", "fd.net == 2001:4860::0/32", True),
    ("2001:4860:4860::8888", "fd.sip != 10::0/16", True),
    ("2001:4860:4860::8888", "fd.sip == 10::0/16", False),
])
def test_address_comparisons(real_registry, ev, sip, condition, expected):
    e = ev("connect", sip=sip, sport=443, res=0)
    assert compile_condition(condition, real_registry)(e) is expected


@pytest.mark.parametrize("condition, expected", [
    ("evt.buffer bcontains 68656c6c6f", True), ("evt.buffer bcontains 656c6C", True),
    ("evt.buffer bcontains 20", False), ("evt.buffer bcontains 656c6cAA", False),
    ("evt.buffer bstartswith 68", True), ("evt.buffer bstartswith 65", False),
    ('evt.buffer = "hello"', True), ('evt.buffer = "hell"', False),
])
def test_byte_buffers(real_registry, ev, condition, expected):
    e = ev("write", args={"data": b"hello"}, res=5)
    assert compile_condition(condition, real_registry)(e) is expected


@pytest.mark.parametrize("condition", [
    "evt.buffer bcontains", "evt.buffer bcontains 2", "evt.buffer bcontains 2g",
    "evt.buffer bstartswith 2", "evt.buffer bstartswith 123Z"])
def test_byte_operators_need_whole_hex_bytes(real_registry, condition):
    with pytest.raises(RuleError):
        compile_condition(condition, real_registry)


# -- compile warnings (libs filter_compiler.ut.cpp, compilation_warnings) -------------------

@pytest.mark.parametrize("condition, warned", [
    ("proc.name = proc.pname", True),                     # val() forgotten
    ("proc.name = 'tolower(proc.pname)'", True),
    ("proc.name regex syscall", True), ("proc.name regex ^syscall$", True),
    ("proc.name regex .*syscall", True), ("proc.name regex syscall.+", True),
    ("proc.name regex .?syscall.?", True),
    ("proc.name = unknown.field", False), ("proc.name = tolower", False),
    ("proc.name = tolower(proc.pname)", False),           # a real transformer: no warning
    ("proc.name = 'tolow(proc.pname)'", False),
    ("proc.name regex syscall.{1}", False), ("proc.name regex 'syscall\\\\.*'", False),
    ("proc.name regex s.*l", False), ("proc.name regex syscal[l]?", False),
])
def test_compile_warnings(reg, condition, warned):
    from syswarden.core.rules.compiler import Compiler, Origin
    comp = Compiler(reg)
    comp.resolve_text(condition, Origin(condition))
    assert bool(comp.warnings) is warned, [w.reason for w in comp.warnings]


# -- bytes that are not UTF-8 (libs filterchecks/invalid_utf8.cpp) ---------------------------

@pytest.mark.parametrize("condition, expected", [
    ('fd.name = "/p\\xff/q\\xff"', True),
    ('fd.name contains "\\xff"', True),
    ('fd.name contains "\\xfe"', False),
    ('fd.name glob "/p?/q?"', True),                      # one byte, one ?
    ('fd.name in ("/p\\xff/q\\xff")', True),
    ('fd.directory contains "\\xff"', True),
    ('fd.filename endswith "\\xff"', True),
    ('fd.name regex "/p./q."', True),
    ('fd.name regex "/p./q"', False),
    ('proc.name = "caf\\xc3\\xa9"', False),              # \xc3\xa9 is é ...
])
def test_bytes_that_are_not_utf8(real_registry, ev, condition, expected):
    path = b"/p\xff/q\xff".decode("utf-8", "surrogateescape")   # as the sources decode paths
    e = ev("openat", name=path, args={"flags": 0})
    assert compile_condition(condition, real_registry)(e) is expected
    assert compile_condition('proc.name = "caf\\xc3\\xa9"', real_registry)(
        ev("openat", name=path, proc="café"))          # ... so it matches café
