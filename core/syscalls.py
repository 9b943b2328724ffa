"""The syscall event table, in Falco's names: event types, argument names, flag tables.

Each event syswarden handles is one system call taken on its exit, with the parameters Falco
records on the enter event merged in (``ptrace`` has ``request`` and ``pid`` from the enter event
and ``res``, ``addr``, ``data`` from the exit).  :data:`EVENTS` gives, for every event type we
support, its argument names in Falco's order (exit parameters first, then the enter parameters
the exit event lacks), as listed in falcosecurity/libs ``driver/event_table.c``.  Sources fill
``Event.args`` with exactly these names.

Argument values are *raw*: the numbers the kernel gave (Linux flag bits, not Falco's PPM
re-encoding), paths and strings as text, ``tuple``/``addr`` as the text Falco prints
(``1.2.3.4:5->6.7.8.9:80``).  ``evt.arg.NAME`` renders a value the way Falco prints it
(:func:`render_arg`: flags as ``O_TRUNC|O_CREAT|O_WRONLY``, in the order of Falco's flag tables;
socket families as ``AF_INET``; errno results as ``ENOENT``); ``evt.rawarg.NAME`` gives the raw
value.

:data:`KNOWN_EVENT_TYPES` is every event type name Falco knows (syscalls we do not capture
included), so that ``evt.type = bogus`` can be reported at load time.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from typing import Any

# ---------------------------------------------------------------------------------------------
# Argument lists (exit params, then enter params not already present)
# ---------------------------------------------------------------------------------------------

_PROC_X = ("res", "exe", "args", "tid", "pid", "ptid", "cwd", "fdlimit", "pgft_maj", "pgft_min",
           "vm_size", "vm_rss", "vm_swap", "comm", "cgroups")
_EXEC_X = _PROC_X + ("env", "tty", "pgid", "loginuid", "flags", "cap_inheritable",
                     "cap_permitted", "cap_effective", "exe_ino", "exe_ino_ctime",
                     "exe_ino_mtime", "uid", "trusted_exepath", "gid")
_CLONE_X = _PROC_X + ("flags", "uid", "gid", "vtid", "vpid", "pidns_init_start_ts")

EVENTS: dict[str, tuple[str, ...]] = {
    # processes
    "execve": _EXEC_X + ("filename",),
    "execveat": _EXEC_X + ("dirfd", "pathname"),
    "clone": _CLONE_X,
    "clone3": _CLONE_X,
    "fork": _CLONE_X,
    "vfork": _CLONE_X,
    "procexit": ("status", "ret", "sig", "core", "reaper_tid"),
    "setns": ("res", "fd", "nstype"),
    "unshare": ("res", "flags"),
    "ptrace": ("res", "addr", "data", "request", "pid"),
    "setuid": ("res", "uid"),
    "setgid": ("res", "gid"),
    "setresuid": ("res", "ruid", "euid", "suid"),
    "setresgid": ("res", "rgid", "egid", "sgid"),
    "setsid": ("res",),
    "setpgid": ("res", "pid", "pgid"),
    "chroot": ("res", "path"),
    "prctl": ("res", "option", "arg2_str", "arg2_int"),
    "capset": ("res", "cap_inheritable", "cap_permitted", "cap_effective"),
    "kill": ("res", "pid", "sig"),
    "tgkill": ("res", "pid", "tid", "sig"),
    "seccomp": ("res", "op", "flags"),
    # files
    "open": ("fd", "name", "flags", "mode", "dev", "ino"),
    "openat": ("fd", "dirfd", "name", "flags", "mode", "dev", "ino"),
    "openat2": ("fd", "dirfd", "name", "flags", "mode", "resolve", "dev", "ino"),
    "creat": ("fd", "name", "mode", "dev", "ino", "creat_flags"),
    "open_by_handle_at": ("fd", "mountfd", "flags", "path", "dev", "ino"),
    "close": ("res", "fd"),
    "dup": ("res", "oldfd"),
    "dup2": ("res", "oldfd", "newfd"),
    "dup3": ("res", "oldfd", "newfd", "flags"),
    "rename": ("res", "oldpath", "newpath"),
    "renameat": ("res", "olddirfd", "oldpath", "newdirfd", "newpath"),
    "renameat2": ("res", "olddirfd", "oldpath", "newdirfd", "newpath", "flags"),
    "unlink": ("res", "path"),
    "unlinkat": ("res", "dirfd", "name", "flags"),
    "mkdir": ("res", "path", "mode"),
    "mkdirat": ("res", "dirfd", "path", "mode"),
    "rmdir": ("res", "path"),
    "link": ("res", "oldpath", "newpath"),
    "linkat": ("res", "olddir", "oldpath", "newdir", "newpath", "flags"),
    "symlink": ("res", "target", "linkpath"),
    "symlinkat": ("res", "target", "linkdirfd", "linkpath"),
    "chmod": ("res", "filename", "mode"),
    "fchmod": ("res", "fd", "mode"),
    "fchmodat": ("res", "dirfd", "filename", "mode"),
    "chown": ("res", "path", "uid", "gid"),
    "lchown": ("res", "path", "uid", "gid"),
    "fchown": ("res", "fd", "uid", "gid"),
    "fchownat": ("res", "dirfd", "pathname", "uid", "gid", "flags"),
    "chdir": ("res", "path"),
    "fchdir": ("res", "fd"),
    "mount": ("res", "dev", "dir", "type", "flags", "data"),
    "umount": ("res", "name", "flags"),
    "umount2": ("res", "name", "flags"),
    "memfd_create": ("fd", "name", "flags"),
    "userfaultfd": ("res", "flags"),
    "read": ("res", "data", "fd", "size"),
    "write": ("res", "data", "fd", "size"),
    "pread": ("res", "data", "fd", "size", "pos"),
    "pwrite": ("res", "data", "fd", "size", "pos"),
    "readv": ("res", "size", "data", "fd"),
    "writev": ("res", "data", "fd", "size"),
    "ioctl": ("res", "fd", "request", "argument"),
    "fcntl": ("res", "fd", "cmd"),
    "mmap": ("res", "vm_size", "vm_rss", "vm_swap", "addr", "length", "prot", "flags", "fd",
             "offset"),
    "mprotect": ("res", "addr", "length", "prot"),
    "pipe": ("res", "fd1", "fd2", "ino"),
    "pipe2": ("res", "fd1", "fd2", "ino", "flags"),
    "inotify_init": ("res", "flags"),
    "inotify_init1": ("res", "flags"),
    "signalfd": ("res", "fd", "mask", "flags"),
    "eventfd": ("res", "initval", "flags"),
    "timerfd_create": ("res", "clockid", "flags"),
    "flock": ("res", "fd", "operation"),
    "access": ("res", "name", "mode"),
    "stat": ("res", "path"),
    "lstat": ("res", "path"),
    "fstat": ("res", "fd"),
    "getdents": ("res", "fd"),
    "getdents64": ("res", "fd"),
    # kernel modules and bpf
    "init_module": ("res", "img", "length", "uargs"),
    "finit_module": ("res", "fd", "uargs", "flags"),
    "delete_module": ("res", "name", "flags"),
    "bpf": ("res_or_fd", "cmd"),
    # network
    "socket": ("fd", "domain", "type", "proto"),
    "socketpair": ("res", "fd1", "fd2", "source", "peer", "domain", "type", "proto"),
    "connect": ("res", "tuple", "fd", "addr"),
    "accept": ("fd", "tuple", "queuepct", "queuelen", "queuemax"),
    "accept4": ("fd", "tuple", "queuepct", "queuelen", "queuemax", "flags"),
    "listen": ("res", "fd", "backlog"),
    "bind": ("res", "addr", "fd"),
    "shutdown": ("res", "fd", "how"),
    "sendto": ("res", "data", "fd", "size", "tuple"),
    "sendmsg": ("res", "data", "fd", "size", "tuple"),
    "recvfrom": ("res", "data", "tuple", "fd", "size"),
    "recvmsg": ("res", "size", "data", "tuple", "msgcontrol", "fd"),
    "setsockopt": ("res", "fd", "level", "optname", "val", "optlen"),
    "getsockopt": ("res", "fd", "level", "optname", "val", "optlen"),
    # io_uring
    "io_uring_setup": ("res", "entries", "sq_entries", "cq_entries", "flags", "sq_thread_cpu",
                       "sq_thread_idle", "features"),
    "io_uring_enter": ("res", "fd", "to_submit", "min_complete", "flags", "sig"),
    "io_uring_register": ("res", "fd", "opcode", "arg", "nr_args"),
}

#: The parameters of Falco's *enter* event, in its order, where the enter event has any
#: (Falco's drivers now put them in the exit event, after its own: ``evt.arg[N]`` reads
#: :data:`EVENTS`).
ENTER_ARGS: dict[str, tuple[str, ...]] = {
    "open": ("name", "flags", "mode"), "openat": ("dirfd", "name", "flags", "mode"),
    "openat2": ("dirfd", "name", "flags", "mode", "resolve"), "creat": ("name", "mode"),
    "close": ("fd",), "socket": ("domain", "type", "proto"), "connect": ("fd", "addr"),
    "bind": ("fd",), "listen": ("fd", "backlog"), "accept4": ("flags",),
    "sendto": ("fd", "size", "tuple"), "sendmsg": ("fd", "size", "tuple"),
    "recvfrom": ("fd", "size"), "recvmsg": ("fd",), "ptrace": ("request", "pid"),
    "setns": ("fd", "nstype"), "unshare": ("flags",), "setuid": ("uid",), "setgid": ("gid",),
    "setresuid": ("ruid", "euid", "suid"), "setresgid": ("rgid", "egid", "sgid"),
    "mkdir": ("mode",), "execve": ("filename",), "execveat": ("dirfd", "pathname", "flags"),
    "mount": ("flags",), "umount2": ("flags",), "kill": ("pid", "sig"), "fchdir": ("fd",),
    "read": ("fd", "size"), "write": ("fd", "size"), "bpf": ("cmd",),
    "socketpair": ("domain", "type", "proto"), "shutdown": ("fd", "how"),
    "fcntl": ("fd", "cmd"), "ioctl": ("fd", "request", "argument"), "dup": ("fd",),
}


def _exit_args(name: str, merged: tuple[str, ...]) -> tuple[str, ...]:
    enter = set(ENTER_ARGS.get(name, ()))
    end = len(merged)
    while end > 1 and merged[end - 1] in enter:
        end -= 1
    return merged[:end]


#: The parameters of Falco's exit event, in its order.
EXIT_ARGS: dict[str, tuple[str, ...]] = {n: _exit_args(n, a) for n, a in EVENTS.items()}

#: The event types a rule may name.  Falco knows many more than we capture; naming one of
#: these in a rule is fine (it simply never fires), naming anything else is reported.
KNOWN_EVENT_TYPES: frozenset[str] = frozenset(EVENTS) | frozenset("""
    syscall brk epoll_wait poll select lseek llseek getcwd send recv getsockname getpeername
    sendmmsg recvmmsg futex stat64 lstat64 fstat64 preadv pwritev tkill nanosleep getrlimit
    setrlimit prlimit switch drop munmap mmap2 splice quotactl scapevent getuid geteuid getgid
    getegid getresuid getresgid container signaldeliver procinfo k8s semop semctl ppoll semget
    tracer mesos notification infra page_fault pluginevent copy_file_range mlock munlock
    mlockall munlockall cpu_hotplug sendfile semget eventfd2 epoll_create epoll_create1
    timerfd fsconfig process_vm_readv process_vm_writev pidfd_open pidfd_getfd mlock2
    asyncevent newfstatat fstatat access faccessat faccessat2 umount read write
""".split())

# ---------------------------------------------------------------------------------------------
# Falco's state repair (base_syscalls.repair): libsinsp's sinsp_repair_state_sc_set
# ---------------------------------------------------------------------------------------------

#: The syscalls of Falco's network category (``EC_NET``) syswarden knows.
NET_SYSCALLS = frozenset("""socket bind connect listen accept accept4 shutdown socketpair
    setsockopt getsockopt getsockname getpeername""".split())
#: The syscalls of Falco's file and I/O categories (``EC_FILE``, ``EC_IO_READ``,
#: ``EC_IO_WRITE``, ``EC_IO_OTHER``) syswarden knows: those whose fds ``close`` must end.
FD_SYSCALLS = frozenset("""open openat openat2 creat open_by_handle_at link linkat unlink
    unlinkat mkdir mkdirat rmdir rename renameat renameat2 symlink symlinkat chmod fchmod
    fchmodat chown fchown fchownat lchown stat lstat fstat access getdents getdents64 flock
    mount umount umount2 read pread readv write pwrite writev sendto sendmsg recvfrom recvmsg
    send recv close dup dup2 dup3 fcntl ioctl pipe pipe2 eventfd signalfd timerfd_create
    inotify_init inotify_init1 memfd_create userfaultfd sendfile splice""".split())
#: What the process state needs whatever the rules follow (Falco's repaired state set).
PROCESS_STATE_SYSCALLS = frozenset("""clone clone3 fork vfork execve execveat fchdir chdir
    chroot capset setgid setpgid setresgid setresuid setsid setuid prctl procexit""".split())


def repair_state_syscalls(selected: set[str]) -> set[str]:
    """Falco's ``base_syscalls.repair``: ``selected`` plus the syscalls the state engine needs
    to stay right given them (libsinsp's ``sinsp_repair_state_sc_set``): the process state's
    always; ``socket`` and ``getsockopt`` (and ``close``) with a network syscall; ``bind``
    with ``accept``, ``accept4`` or ``listen``; ``close`` with a file or I/O syscall."""
    out = set(selected) | PROCESS_STATE_SYSCALLS
    if selected & NET_SYSCALLS:
        out |= {"socket", "getsockopt", "close"}
    if selected & {"accept", "accept4", "listen"}:
        out.add("bind")
    if selected & FD_SYSCALLS:
        out.add("close")
    return out


# ---------------------------------------------------------------------------------------------
# Flag tables: Linux bit values, named and ordered as Falco's flags tables print them
# ---------------------------------------------------------------------------------------------

FlagTable = tuple[tuple[str, int], ...]

#: open(2) flags besides the access mode, in Falco's file_flags order.
OPEN_FLAGS: FlagTable = (
    ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000), ("O_DIRECT", 0o40000),
    ("O_TRUNC", 0o1000), ("O_SYNC", 0o4010000), ("O_NONBLOCK", 0o4000), ("O_EXCL", 0o200),
    ("O_DSYNC", 0o10000), ("O_APPEND", 0o2000), ("O_CREAT", 0o100),
)
#: Not an open(2) flag: set on an open's ``flags`` by the live source when the open created
#: the file (Falco's ``O_F_CREATED``), a bit Linux does not use for open flags.
O_F_CREATED = 1 << 30
_OPEN_TAIL: FlagTable = (("O_CLOEXEC", 0o2000000), ("O_TMPFILE", 0o20000000 | 0o200000),
                         ("O_NOFOLLOW", 0o400000), ("O_PATH", 0o10000000),
                         ("O_F_CREATED", O_F_CREATED))
#: O_TMPFILE's bits (it includes O_DIRECTORY's); ``__O_TMPFILE``, its own bit, alone.
O_TMPFILE_OWN = 0o20000000
O_TMPFILE = O_TMPFILE_OWN | dict(OPEN_FLAGS)["O_DIRECTORY"]
#: The bits of some flags the prefilters test, by name (Linux's values).
O_CREAT, O_TRUNC = (dict(OPEN_FLAGS)[n] for n in ("O_CREAT", "O_TRUNC"))
_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}

CLONE_FLAGS: FlagTable = (
    ("CLONE_FILES", 0x400), ("CLONE_FS", 0x200), ("CLONE_IO", 0x80000000),
    ("CLONE_NEWIPC", 0x08000000), ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWNS", 0x00020000),
    ("CLONE_NEWPID", 0x20000000), ("CLONE_NEWUTS", 0x04000000), ("CLONE_PARENT", 0x8000),
    ("CLONE_PARENT_SETTID", 0x100000), ("CLONE_PTRACE", 0x2000), ("CLONE_SIGHAND", 0x800),
    ("CLONE_SYSVSEM", 0x40000), ("CLONE_THREAD", 0x10000), ("CLONE_UNTRACED", 0x800000),
    ("CLONE_VM", 0x100), ("CLONE_NEWUSER", 0x10000000), ("CLONE_CHILD_CLEARTID", 0x200000),
    ("CLONE_CHILD_SETTID", 0x01000000), ("CLONE_SETTLS", 0x80000), ("CLONE_STOPPED", 0x02000000),
    ("CLONE_VFORK", 0x4000), ("CLONE_NEWCGROUP", 0x02000000), ("CLONE_NEWTIME", 0x80),
)

#: What the fd table shows as ``fd.l4proto`` for an IP socket of each type (``SOCK_*``, without
#: its flags); another type shows ``raw``.  The socket prefilter's TCP class is read from it.
SOCKET_TYPE_PROTOCOLS: dict[int, str] = {1: "tcp", 2: "udp", 3: "raw", 5: "tcp"}

SOCKET_FAMILIES: dict[int, str] = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX", 5: "AF_APPLETALK",
    6: "AF_NETROM", 7: "AF_BRIDGE", 8: "AF_ATMPVC", 9: "AF_X25", 10: "AF_INET6", 11: "AF_ROSE",
    12: "AF_DECnet", 13: "AF_NETBEUI", 14: "AF_SECURITY", 15: "AF_KEY", 16: "AF_NETLINK",
    17: "AF_PACKET", 18: "AF_ASH", 19: "AF_ECONET", 20: "AF_ATMSVC", 21: "AF_RDS", 22: "AF_SNA",
    23: "AF_IRDA", 24: "AF_PPPOX", 25: "AF_WANPIPE", 26: "AF_LLC", 29: "AF_CAN", 30: "AF_TIPC",
    31: "AF_BLUETOOTH", 32: "AF_IUCV", 33: "AF_RXRPC", 34: "AF_ISDN", 35: "AF_PHONET",
    36: "AF_IEEE802154", 37: "AF_CAIF", 38: "AF_ALG", 39: "AF_NFC", 40: "AF_VSOCK",
    44: "AF_XDP",
}

PTRACE_REQUESTS: dict[int, str] = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO", 0x420a: "PTRACE_GETSIGMASK", 0x420b: "PTRACE_SETSIGMASK",
    0x420c: "PTRACE_SECCOMP_GET_FILTER",
}

MOUNT_FLAGS: FlagTable = (
    ("RDONLY", 1), ("NOSUID", 2), ("NODEV", 4), ("NOEXEC", 8), ("SYNCHRONOUS", 16),
    ("REMOUNT", 32), ("MANDLOCK", 64), ("DIRSYNC", 128), ("NOATIME", 1024),
    ("NODIRATIME", 2048), ("BIND", 4096), ("MOVE", 8192), ("REC", 16384), ("SILENT", 32768),
    ("POSIXACL", 1 << 16), ("UNBINDABLE", 1 << 17), ("PRIVATE", 1 << 18), ("SLAVE", 1 << 19),
    ("SHARED", 1 << 20), ("RELATIME", 1 << 21), ("KERNMOUNT", 1 << 22), ("I_VERSION", 1 << 23),
    ("STRICTATIME", 1 << 24), ("LAZYTIME", 1 << 25),
)
UMOUNT_FLAGS: FlagTable = (("FORCE", 1), ("DETACH", 2), ("EXPIRE", 4), ("NOFOLLOW", 8))
UNLINKAT_FLAGS: FlagTable = (("AT_REMOVEDIR", 0x200),)
LINKAT_FLAGS: FlagTable = (("AT_SYMLINK_FOLLOW", 0x400), ("AT_EMPTY_PATH", 0x1000))
RENAMEAT2_FLAGS: FlagTable = (("RENAME_NOREPLACE", 1), ("RENAME_EXCHANGE", 2),
                              ("RENAME_WHITEOUT", 4))
MEMFD_FLAGS: FlagTable = (("MFD_CLOEXEC", 1), ("MFD_ALLOW_SEALING", 2), ("MFD_HUGETLB", 4),
                          ("MFD_NOEXEC_SEAL", 8), ("MFD_EXEC", 0x10))
EXECVEAT_FLAGS: FlagTable = (("AT_EMPTY_PATH", 0x1000), ("AT_SYMLINK_NOFOLLOW", 0x100))
FINIT_MODULE_FLAGS: FlagTable = (("MODULE_INIT_IGNORE_MODVERSIONS", 1),
                                 ("MODULE_INIT_IGNORE_VERMAGIC", 2))
DELETE_MODULE_FLAGS: FlagTable = (("O_NONBLOCK", 0o4000), ("O_TRUNC", 0o1000))
PROT_FLAGS: FlagTable = (("PROT_READ", 1), ("PROT_WRITE", 2), ("PROT_EXEC", 4),
                         ("PROT_SEM", 8), ("PROT_GROWSDOWN", 0x01000000),
                         ("PROT_GROWSUP", 0x02000000), ("PROT_SAO", 0x10))
SOCKET_TYPES: dict[int, str] = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW",
                                4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
                                10: "SOCK_PACKET"}
BPF_CMDS: dict[int, str] = {0: "BPF_MAP_CREATE", 1: "BPF_MAP_LOOKUP_ELEM",
                            2: "BPF_MAP_UPDATE_ELEM", 3: "BPF_MAP_DELETE_ELEM",
                            4: "BPF_MAP_GET_NEXT_KEY", 5: "BPF_PROG_LOAD", 6: "BPF_OBJ_PIN",
                            7: "BPF_OBJ_GET", 8: "BPF_PROG_ATTACH", 9: "BPF_PROG_DETACH"}


def render_flags(value: int, table: FlagTable) -> str:
    """Names of the bits set in ``value``, ``|``-joined in table order (Falco's way)."""
    names = []
    rest = value
    for name, bits in table:
        if bits and rest & bits == bits:
            names.append(name)
            rest &= ~bits
    return "|".join(names)


def render_open_flags(value: int) -> str:
    """``O_TRUNC|O_CREAT|O_WRONLY|O_CLOEXEC``: Falco's file_flags order, access mode included."""
    rest = value & ~3
    tmpfile = value & O_TMPFILE == O_TMPFILE
    if tmpfile:   # O_TMPFILE includes O_DIRECTORY's bit; Falco prints it as O_TMPFILE only
        rest &= ~O_TMPFILE
    names = []
    for name, bits in OPEN_FLAGS:
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
    names.append(_ACCMODE.get(value & 3, "O_RDWR"))
    if tmpfile:
        rest |= O_TMPFILE
    for name, bits in _OPEN_TAIL:
        if rest & bits == bits:
            names.append(name)
            rest &= ~bits
    return "|".join(names)


#: chmod's mode bits, as Falco prints a mode (PT_MODE): ``S_IRUSR|S_IWUSR|S_ISUID`` ...
MODE_FLAGS: FlagTable = (
    ("S_IXOTH", 0o1), ("S_IWOTH", 0o2), ("S_IROTH", 0o4),
    ("S_IXGRP", 0o10), ("S_IWGRP", 0o20), ("S_IRGRP", 0o40),
    ("S_IXUSR", 0o100), ("S_IWUSR", 0o200), ("S_IRUSR", 0o400),
    ("S_ISVTX", 0o1000), ("S_ISGID", 0o2000), ("S_ISUID", 0o4000),
)


def _flags(table: FlagTable) -> Callable[[int], str]:
    return lambda v: render_flags(v, table)


def _enum(table: dict[int, str]) -> Callable[[int], str]:
    return lambda v: table.get(v, str(v))


def _octal(v: int) -> str:
    return f"0{v:o}"


def render_errno(res: int) -> str:
    """Falco's ``evt.res``: ``SUCCESS`` or the errno name (``ENOENT``) of a negative result."""
    if res is None:
        return None  # type: ignore[return-value]
    if res >= 0:
        return "SUCCESS"
    return _errno.errorcode.get(-res, str(res))


#: (event type or "*", argument name) -> renderer of the raw value, as Falco prints it
RENDERERS: dict[tuple[str, str], Callable[[Any], str]] = {
    ("open", "flags"): render_open_flags, ("openat", "flags"): render_open_flags,
    ("openat2", "flags"): render_open_flags, ("open_by_handle_at", "flags"): render_open_flags,
    ("userfaultfd", "flags"): render_open_flags,
    ("open", "mode"): _octal, ("openat", "mode"): _octal, ("openat2", "mode"): _octal,
    ("creat", "mode"): _octal, ("mkdir", "mode"): _octal, ("mkdirat", "mode"): _octal,
    ("chmod", "mode"): _flags(MODE_FLAGS), ("fchmod", "mode"): _flags(MODE_FLAGS),
    ("fchmodat", "mode"): _flags(MODE_FLAGS),
    ("clone", "flags"): _flags(CLONE_FLAGS), ("clone3", "flags"): _flags(CLONE_FLAGS),
    ("fork", "flags"): _flags(CLONE_FLAGS), ("vfork", "flags"): _flags(CLONE_FLAGS),
    ("unshare", "flags"): _flags(CLONE_FLAGS), ("setns", "nstype"): _flags(CLONE_FLAGS),
    ("socket", "domain"): _enum(SOCKET_FAMILIES), ("socketpair", "domain"): _enum(SOCKET_FAMILIES),
    ("socket", "type"): _enum(SOCKET_TYPES),
    ("ptrace", "request"): _enum(PTRACE_REQUESTS),
    ("mount", "flags"): _flags(MOUNT_FLAGS), ("umount", "flags"): _flags(UMOUNT_FLAGS),
    ("umount2", "flags"): _flags(UMOUNT_FLAGS),
    ("unlinkat", "flags"): _flags(UNLINKAT_FLAGS), ("linkat", "flags"): _flags(LINKAT_FLAGS),
    ("renameat2", "flags"): _flags(RENAMEAT2_FLAGS),
    ("memfd_create", "flags"): _flags(MEMFD_FLAGS),
    ("execveat", "flags"): _flags(EXECVEAT_FLAGS),
    ("finit_module", "flags"): _flags(FINIT_MODULE_FLAGS),
    ("delete_module", "flags"): _flags(DELETE_MODULE_FLAGS),
    ("mmap", "prot"): _flags(PROT_FLAGS), ("mprotect", "prot"): _flags(PROT_FLAGS),
    ("bpf", "cmd"): _enum(BPF_CMDS),
}

#: result arguments: negative values print as errno names
_RESULT_ARGS = frozenset({"res", "fd", "res_or_fd"})


_rendered: dict[tuple[str, str, int], str] = {}


def render_arg(evt_type: str, name: str, value: Any) -> str | None:
    """An argument as Falco prints ``evt.arg.NAME``; None when the value is unknown."""
    if value is None:
        return None
    fn = RENDERERS.get((evt_type, name))
    if fn is not None and isinstance(value, int):
        key = (evt_type, name, value)
        got = _rendered.get(key)
        if got is None:
            if len(_rendered) > 8192:   # flag values are few; bound the memo anyway
                _rendered.clear()
            got = _rendered[key] = fn(value)
        return got
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value < 0 and name in _RESULT_ARGS:
            return _errno.errorcode.get(-value, str(value))
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def arg_names(evt_type: str) -> tuple[str, ...]:
    """The ordered argument names of an event type (empty for one we do not describe)."""
    return EVENTS.get(evt_type, ())
