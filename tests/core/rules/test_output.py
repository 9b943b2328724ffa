"""Output formats: %field, %field[arg], %container.info, <NA>, output_fields."""

from __future__ import annotations

import pytest
from syswarden.core.errors import Location, RuleError
from syswarden.core.rules.output import compile_output


@pytest.mark.parametrize("fmt, event, text", [
    ("File %fd.name opened by %proc.name", dict(name="/etc/shadow"),
     "File /etc/shadow opened by cat"),
    ("(file=%fd.name)", dict(name="/etc/x"), "(file=/etc/x)"),
    ("file=%fd.name.", dict(name="/etc/x"), "file=/etc/x."),           # trailing dot is text
    ("gparent=%proc.aname[2] parent=%proc.aname[1]", {}, "gparent=sshd parent=bash"),
    ("ggparent=%proc.aname[3]", {}, "ggparent=<NA>"),
    ("x=%proc.unknown_here y", {}, "x=<NA> y"),
    ("flags=%evt.arg.flags", dict(type="openat", name="/x", args={"flags": 0o1101}),
     "flags=O_TRUNC|O_CREAT|O_WRONLY"),
    ("%evt.type %evt.res", dict(type="openat", name="/x", res=-13), "openat EACCES"),
    ("%container.info", {}, "host"),
    ("%container.info", dict(container="abcdef123456"), "web (id=abcdef123456)"),
    ("in %container.info.", dict(container="abcdef123456"), "in web (id=abcdef123456)."),
    ("100% sure %proc.name", {}, "100% sure cat"),
    ("uid=%user.uid", {}, "uid=1000"),
    ("upper=%proc.is_exe_upper_layer", {}, "upper=false"),
    ("no fields at all", {}, "no fields at all"),
])
def test_render(reg, ev, fmt, event, text):
    render = compile_output(fmt, reg)
    assert render(ev(**event))[0] == text


def test_output_fields(reg, ev):
    render = compile_output("%proc.name %fd.num %proc.aname[2] %proc.unknown_here "
                            "%container.info %fd.sip", reg)
    text, fields = render(ev(sip="10.0.0.1", sport=80, container="abcdef123456"))
    assert fields == {"proc.name": "cat", "fd.num": 3, "proc.aname[2]": "sshd",
                      "proc.unknown_here": None, "container.id": "abcdef123456",
                      "container.name": "web", "fd.sip": "10.0.0.1"}
    assert text == "cat 3 sshd <NA> web (id=abcdef123456) 10.0.0.1"


def test_container_info_with_the_real_fields(real_registry):
    from syswarden.core.event import Container, Event, Process
    render = compile_output("%container.info", real_registry)
    host = Event("execve")
    host.proc = Process(5, comm="sh", container_id="host")
    c = Container("abcdef123456", name="web", complete=True)
    inside = Event("execve")
    inside.proc = Process(6, comm="sh", container_id=c.id, container=c)
    inside.container = c
    assert render(host)[0] == "host"
    assert render(inside)[0] == "web (id=abcdef123456)"
    assert render(Event("execve"))[0] == "<NA>"


def test_multi_valued_fields(reg, ev):
    render = compile_output("arg0=%evt.arg[0] anc=%proc.aname", reg)
    text, fields = render(ev("socket", args={"fd": 4, "domain": 17}, res=4, name=None))
    assert text == "arg0=4 anc=(bash,sshd)"                # socket: fd, domain, type, proto
    assert fields == {"evt.arg[0]": "4", "proc.aname": ["bash", "sshd"]}
    text, fields = render(ev("close", args={"res": 0}, res=0, name=None))
    assert text == "arg0=0 anc=(bash,sshd)" and fields["evt.arg[0]"] == "0"


def test_unknown_output_field_is_a_located_error(reg):
    with pytest.raises(RuleError) as info:
        compile_output("file=%fd.nam by %proc.name", reg, Location("r.yaml", 9, 11, "rule 'R'"))
    err = info.value
    assert err.reason == "unknown field 'fd.nam' in output"
    assert (err.location.line, err.location.col) == (9, 11 + 5)


def test_field_values_are_escaped_the_format_text_is_not(reg, ev):
    """A value cannot add a line, drive a terminal or fake an escape; the operator's own text
    (a backslash, a tab written in the rule) is printed as written; output_fields stay raw."""
    forged = "x\n12:00:00.000000000: Critical forged\x1b[2K \\n"
    render = compile_output("C:\\rules\tproc=%proc.name file=%fd.name aname=%proc.aname", reg)
    text, fields = render(ev(name=forged, proc=forged, parent="p\u2028q"))
    shown = "x\\n12:00:00.000000000: Critical forged\\x1b[2K \\\\n"
    assert text == (f"C:\\rules\tproc={shown} file={shown} "
                    f"aname=(p\\u2028q,sshd)")
    assert fields["proc.name"] == forged and fields["fd.name"] == forged
    assert fields["proc.aname"] == ["p\u2028q", "sshd"]


def test_container_info_and_bytes_values_are_escaped(real_registry):
    from syswarden.core.event import Container, Event, Process
    c = Container("abcdef123456", name="web\x1b]0;x\x07", complete=True)
    evt = Event("execve")
    evt.proc = Process(6, comm="sh", container_id=c.id, container=c)
    evt.container = c
    assert compile_output("%container.info", real_registry)(evt)[0] == \
        "web\\x1b]0;x\\x07 (id=abcdef123456)"
    from syswarden.core.escape import escape_text
    from syswarden.core.rules.output import render_value
    assert escape_text(render_value(b"a\xffb\n")) == "a\\xffb\\n"


# -- Falco's formatter (falcosecurity/libs eventformatter.ut.cpp), behaviour for behaviour ------

@pytest.mark.parametrize("fmt, text", [
    ("start %2proc.name end", "start ca end"),              # a width cuts ...
    ("start %10proc.name end", "start cat        end"),     # ... or pads
    ("start%proc.nameand%fd.numend", "startcatand3end"),    # the longest field that binds
    ("start%proc.aname[1]and%fd.num", "startbashand3"),
    ("start %toupper(proc.name) end", "start CAT end"),
    ("start %tolower(toupper(proc.name)) end", "start cat end"),
    ("start %toupper( proc.name ) end", "start CAT end"),    # blanks inside the call
    ("start %toupper( tolower( proc.name ) ) end", "start CAT end"),
    ("start %2toupper(proc.name) end", "start CA end"),
    ("start %10toupper(proc.name) end", "start CAT        end"),
    ("%basename(fd.name)", "shadow"),
    ("start%toupper(proc.name)and%toupper(fd.name)end", "startCATand/ETC/SHADOWend"),
])
def test_falco_formatting(reg, ev, fmt, text):
    assert compile_output(fmt, reg)(ev(name="/etc/shadow"))[0] == text


@pytest.mark.parametrize("fmt, name, text", [
    ("%3proc.name|", "ab\x1b[2K", "ab\\x1b|"),     # the cut is made before escaping ...
    ("%2proc.name n", "a\\b", "a\\\\ n"),         # ... never leaving a bare backslash
    ("%4proc.name|", "\u00e9t\u00e9x", "\u00e9t\u00e9x|"),   # characters, not bytes
    ("%3proc.name|", "a\udcffbc", "a\\xffb|"),    # a byte that is not UTF-8: one character
])
def test_a_width_cuts_the_value_not_its_escapes(reg, ev, fmt, name, text):
    assert compile_output(fmt, reg)(ev(proc=name))[0] == text


def test_a_transformed_field_is_in_output_fields_with_the_field_it_reads(reg, ev):
    render = compile_output("start %toupper(proc.name) %tolower(toupper(proc.aname[1])) end",
                            reg)
    text, fields = render(ev())
    assert text == "start CAT bash end"
    assert fields == {"toupper(proc.name)": "CAT", "proc.name": "cat",
                      "tolower(toupper(proc.aname[1]))": "bash", "proc.aname[1]": "bash"}
    assert compile_output("%2proc.name", reg)(ev())[1] == {"proc.name": "cat"}  # untruncated


@pytest.mark.parametrize("fmt", [
    "start %val(proc.name) end",            # val() is for conditions only
    "start %toupper(val(proc.name)) end",
    "start %toupper(proc.name",             # unclosed
    "start %toupper(tolower(proc.name)",
    "start %toupper(fd.num) end",           # a transformer the type does not take
    "start %some.field end",
    "start %toupper(tolower) end",
])
def test_falco_refuses_these_outputs(reg, fmt):
    with pytest.raises(RuleError):
        compile_output(fmt, reg)


def test_no_blank_between_a_transformer_and_its_parenthesis(reg, ev):
    """Falco's grammar has ``toupper(`` as one token: ``%toupper (proc.name)`` is no
    transformer.  syswarden keeps a ``%`` that no field follows as text (Falco refuses the
    output; docs/rules.md, differences)."""
    assert compile_output("%toupper (proc.name)", reg)(ev())[0] == "%toupper (proc.name)"


def test_join_and_concat_in_outputs(real_registry, ev):
    e = ev("openat", name="/tmp/file_to_run", args={"flags": 0})
    text, fields = compile_output('start %join("->", (proc.name, fd.name)) end',
                                  real_registry)(e)
    assert text == "start cat->/tmp/file_to_run end"
    assert fields == {"join(->,(proc.name,fd.name))": "cat->/tmp/file_to_run",
                      "proc.name": "cat", "fd.name": "/tmp/file_to_run"}
    text, fields = compile_output("start %toupper(concat(proc.name, fd.name)) end",
                                  real_registry)(e)
    assert text == "start CAT/TMP/FILE_TO_RUN end"
    assert fields["toupper(concat(proc.name,fd.name))"] == "CAT/TMP/FILE_TO_RUN"
    text, fields = compile_output("%concat(toupper(proc.name), fd.name)", real_registry)(e)
    assert text == "CAT/tmp/file_to_run"
    assert set(fields) == {"concat(toupper(proc.name),fd.name)", "proc.name", "fd.name"}
