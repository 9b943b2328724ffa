"""Hostile YAML refused: time and peak memory of each refusal, against a normal load.

Each case runs in a fresh child process (so its peak RSS is its own): the child imports
syswarden, loads one input the way the agent does (``load_config`` for a config,
``Loader.load_files`` for a rules file) and reports the time of that call, its peak RSS
(``ru_maxrss``, imports included) and the first line of the error.  Cases:

  baseline     the default config, and Falco's falco_rules.yaml (a normal load, for scale;
               $SYSWARDEN_SHARED/compat as for the tests)
  alias bomb   a 332-byte "billion laughs" (9 levels of 9 aliases: 387 million strings), as a
               config file and inside a rules file
  big int      a 5000-digit integer;  deep  10,000 nested brackets;  dup  a key given twice
  reference    the alias bomb through the loader as it was before the bound
               (core/yamlmarks.py at 204d01b), under RLIMIT_AS 2 GiB and a 120 s timeout

Prints figures; asserts nothing.

    .venv/bin/python bench/bench_yaml_hostile.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPAT = os.path.join(os.environ.get("SYSWARDEN_SHARED", os.path.join(REPO, "..", "shared")),
                      "compat")
BEFORE = "204d01b"     # the commit before the bounds

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{k}: &{k} [{','.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    kind, path, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from syswarden.core.errors import SyswardenError
    if kind == "config":
        from syswarden.core.config import load_config
        from syswarden.core.plugins import make_plugin_manager
        schemas = make_plugin_manager({}).schemas()
        call = lambda: load_config(path, (), schemas)
    elif kind == "rules":
        from syswarden.core.rules.loader import Loader
        def call():
            errors = Loader().load_files([path]).errors
            if errors:
                raise errors[0]
    else:                                   # "before": the old yamlmarks module, from git
        import types
        old = types.ModuleType("old_yamlmarks")
        exec(compile(open(kind).read().replace("from .errors", "from syswarden.core.errors"),
                     "old_yamlmarks", "exec"), old.__dict__)
        text = open(path).read()
        call = lambda: old.load(text, path)
    start = time.perf_counter()
    try:
        call()
        result = "loaded"
    except SyswardenError as exc:
        result = "refused: " + str(exc).splitlines()[0]
    except MemoryError:
        result = "MemoryError (traceback, exit 1)"
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rss_kib": rss, "result": result}))
""")


def run(kind: str, path: str, limit: int = 0, timeout: float = 120) -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, kind, path, str(limit)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "rss_kib": 0, "result": f"still running after {timeout} s"}
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"seconds": 0, "rss_kib": 0,
                "result": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="bench-yaml-")

    def write(name: str, text: str) -> str:
        path = os.path.join(tmp, name)
        with open(path, "w") as fh:
            fh.write(text)
        return path

    bomb = write("bomb.yaml", BOMB)
    old = write("old_yamlmarks.py", subprocess.run(
        ["git", "-C", REPO, "show", f"{BEFORE}:core/yamlmarks.py"], capture_output=True,
        text=True, check=True).stdout)
    cases = [
        ("baseline: default config", "config",
         os.path.join(REPO, "core", "default_config.yaml")),
        ("baseline: falco_rules.yaml", "rules",
         os.path.join(COMPAT, "falco-rules", "falco_rules.yaml")),
        (f"alias bomb ({len(BOMB)} B) as config", "config", bomb),
        ("alias bomb in a rules file", "rules",
         write("bomb-rules.yaml", "- list: l\n  items: [x]\n  more:\n"
               + textwrap.indent(BOMB, "    "))),
        ("5000-digit integer", "config", write("int.yaml", "plugins: [" + "9" * 5000 + "]\n")),
        ("10,000 nested brackets", "config",
         write("deep.yaml", "plugins: " + "[" * 10000 + "]" * 10000 + "\n")),
        ("duplicate key", "config", write("dup.yaml", "log_level: info\nlog_level: debug\n")),
    ]
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'case':34} {'time':>9} {'peak RSS':>10}  result")
    for name, kind, path in cases:
        r = run(kind, path)
        print(f"{name:34} {r['seconds'] * 1000:7.1f}ms {r['rss_kib'] / 1024:7.1f}MiB  "
              f"{r['result'][:90]}")
    r = run(old, bomb, limit=2 << 30)
    print(f"{'reference: bomb, loader @' + BEFORE:34} {r['seconds']:8.1f}s "
          f"{r['rss_kib'] / 1024:7.1f}MiB  {r['result'][:90]} (RLIMIT_AS 2 GiB)")


if __name__ == "__main__":
    main()
