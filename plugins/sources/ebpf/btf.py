"""Field offsets of the running kernel's structures, read from its BTF (/sys/kernel/btf/vmlinux).

The kernel headers installed do not match the running kernel, so the BPF program never uses
their struct layouts.  For the few values no helper or tracepoint gives (the controlling tty,
the login uid, the audit session of the task that execs, whether an open created its file, a socket's local end) it reads memory at offsets taken
here from the running kernel's own type information.  A missing structure or member (a kernel
built without audit, say) leaves that value to the /proc fallback.

Only what is needed is decoded: the type table is walked once, noting where each type is,
then the structs and unions asked for are decoded by name, members by name through anonymous
members.
"""

from __future__ import annotations

import functools
import itertools
import struct
from typing import Iterable

VMLINUX = "/sys/kernel/btf/vmlinux"

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}


#: A type record's size in 4-byte words: its 3-word header, what follows it of fixed size, and
#: the size of each of its ``vlen`` entries (members, enumerators, parameters, variables).
_FIXED = {INT: 1, ARRAY: 3, VAR: 1, DECL_TAG: 1}
_ENTRY = {STRUCT: 3, UNION: 3, ENUM: 2, FUNC_PROTO: 2, DATASEC: 3, ENUM64: 3}
_WORDS = [3 + _FIXED.get(kind, 0) for kind in range(32)]
_WORDS_PER_ENTRY = [_ENTRY.get(kind, 0) for kind in range(32)]


class Btf:
    """The type table of a BTF blob.  Walked once at start-up, so the walk only notes where
    each type's record is (and the structs' and functions' names); a type is decoded when it
    is asked for."""

    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data, 0)
        if magic != 0xEB9F or type_off % 4 or type_len % 4 or hdr_len % 4:
            raise ValueError("not BTF data")
        self.data = data
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        start = hdr_len + type_off
        #: the type section as little-endian words (BTF is this machine's byte order)
        words = memoryview(data)[start:start + type_len].cast("I")
        self.base = start
        self.where: list[int] = [0]                  # type id -> its first word (0: void)
        self.struct_by_name_off: dict[int, int] = {}  # a struct's/union's name -> its id
        self.func_by_name_off: dict[int, int] = {}   # a function's name (string offset) -> id
        where, size, per_entry = self.where, _WORDS, _WORDS_PER_ENTRY
        structs, funcs = self.struct_by_name_off, self.func_by_name_off
        i, n = 0, len(words)
        while i < n:
            info = words[i + 1]
            kind = (info >> 24) & 0x1F
            where.append(i)
            if words[i]:
                if kind == STRUCT or kind == UNION:
                    structs.setdefault(words[i], len(where) - 1)
                elif kind == FUNC:
                    funcs.setdefault(words[i], len(where) - 1)
            i += size[kind] + per_entry[kind] * (info & 0xFFFF)
        if i != n:
            raise ValueError("truncated BTF type section")

    def name(self, off: int) -> str:
        end = self.strings.index(b"\0", off)
        return self.strings[off:end].decode()

    @functools.cached_property
    def _offsets(self) -> dict[bytes, int]:
        """Each string of the string table -> where it is first (one pass, in C)."""
        names = self.strings.split(b"\0")
        offsets = itertools.accumulate((len(n) + 1 for n in names), initial=0)
        return dict(zip(reversed(names), reversed(list(offsets)[:-1])))

    def _name_off(self, name: str) -> int:
        """Where ``name`` is in the string table (-1: nowhere; strings are deduplicated)."""
        return self._offsets.get(name.encode(), -1)

    def function_id(self, name: str) -> int | None:
        """The type id of the kernel function ``name`` (what an fentry/fexit program is
        attached to), None when the kernel has no such function (inlined, or not built)."""
        return self.func_by_name_off.get(self._name_off(name))

    def struct_id(self, name: str) -> int | None:
        """The type id of ``struct name`` (or ``union name``), None when there is none."""
        return self.struct_by_name_off.get(self._name_off(name))

    def type(self, tid: int) -> tuple[int, int, int] | None:
        """(kind, name offset, size or type) of type ``tid``; None for void."""
        if tid <= 0 or tid >= len(self.where):
            return None
        name_off, info, size_type = struct.unpack_from("<III", self.data,
                                                       self.base + 4 * self.where[tid])
        return (info >> 24) & 0x1F, name_off, size_type

    def members(self, tid: int) -> list[tuple[int, int, int]]:
        """(name offset, type, bit offset) of the members of struct/union ``tid``."""
        pos = self.base + 4 * self.where[tid]
        _name, info, _size = struct.unpack_from("<III", self.data, pos)
        kflag = info >> 31
        out = []
        for i in range(info & 0xFFFF):
            m_name, m_type, m_off = struct.unpack_from("<III", self.data, pos + 12 + 12 * i)
            out.append((m_name, m_type, m_off & 0xFFFFFF if kflag else m_off))
        return out

    def resolve(self, tid: int) -> int:
        """Skip typedefs and qualifiers."""
        while True:
            t = self.type(tid)
            if t is None or t[0] not in _MODIFIERS:
                return tid
            tid = t[2]

    def member_offset(self, struct_name: str, member: str) -> int | None:
        """Byte offset of ``member`` in ``struct struct_name`` (anonymous members searched)."""
        sid = self.struct_id(struct_name)
        if sid is None:
            return None
        bits = self._find(sid, member)
        return None if bits is None or bits % 8 else bits // 8

    def struct_size(self, struct_name: str) -> int | None:
        """``sizeof(struct struct_name)``."""
        sid = self.struct_id(struct_name)
        t = self.type(self.resolve(sid)) if sid is not None else None
        return t[2] if t is not None and t[0] in (STRUCT, UNION) else None

    def _find(self, sid: int, member: str, depth: int = 0) -> int | None:
        tid = self.resolve(sid)
        t = self.type(tid)
        if t is None or t[0] not in (STRUCT, UNION) or depth > 8:
            return None
        for m_name, m_type, m_bits in self.members(tid):
            if m_name and self.name(m_name) == member:
                return m_bits
            if not m_name:                                   # an anonymous struct/union
                got = self._find(m_type, member, depth + 1)
                if got is not None:
                    return m_bits + got
        return None


#: (C macro, struct, member) the program uses.
WANTED = (
    ("OFF_TASK_SIGNAL", "task_struct", "signal"),
    ("OFF_TASK_LOGINUID", "task_struct", "loginuid"),
    ("OFF_TASK_SESSIONID", "task_struct", "sessionid"),
    ("OFF_SIGNAL_TTY", "signal_struct", "tty"),
    ("OFF_SIGNAL_LIVE", "signal_struct", "live"),
    ("OFF_TTY_INDEX", "tty_struct", "index"),
    ("OFF_TTY_DRIVER", "tty_struct", "driver"),
    ("OFF_DRIVER_MAJOR", "tty_driver", "major"),
    ("OFF_DRIVER_MINOR_START", "tty_driver", "minor_start"),
    ("OFF_TASK_THREAD_PID", "task_struct", "thread_pid"),
    ("OFF_PID_LEVEL", "pid", "level"),
    ("OFF_PID_NUMBERS", "pid", "numbers"),
    ("OFF_UPID_NR", "upid", "nr"),
    ("OFF_TASK_FILES", "task_struct", "files"),
    ("OFF_FILES_FDT", "files_struct", "fdt"),
    ("OFF_FDT_FD", "fdtable", "fd"),
    ("OFF_FILE_F_MODE", "file", "f_mode"),
    ("OFF_FILE_PRIVATE", "file", "private_data"),
    ("OFF_FILE_INODE", "file", "f_inode"),
    ("OFF_INODE_MODE", "inode", "i_mode"),
    ("OFF_INODE_INO", "inode", "i_ino"),
    ("OFF_SOCKET_SK", "socket", "sk"),
    ("OFF_SOCKET_TYPE", "socket", "type"),
    ("OFF_SK_PROTOCOL", "sock", "sk_protocol"),
    ("OFF_SKC_FAMILY", "sock_common", "skc_family"),
    ("OFF_SKC_NUM", "sock_common", "skc_num"),
    ("OFF_SKC_RCV_SADDR", "sock_common", "skc_rcv_saddr"),
    ("OFF_SKC_V6_RCV_SADDR", "sock_common", "skc_v6_rcv_saddr"),
    ("OFF_SKC_DPORT", "sock_common", "skc_dport"),
    ("OFF_SKC_DADDR", "sock_common", "skc_daddr"),
    ("OFF_SKC_V6_DADDR", "sock_common", "skc_v6_daddr"),
    ("OFF_TASK_CRED", "task_struct", "cred"),
    ("OFF_CRED_EUID", "cred", "euid"),
    ("OFF_CRED_EGID", "cred", "egid"),
    ("OFF_CRED_CAP_INHERITABLE", "cred", "cap_inheritable"),
    ("OFF_CRED_CAP_PERMITTED", "cred", "cap_permitted"),
    ("OFF_CRED_CAP_EFFECTIVE", "cred", "cap_effective"),
    ("OFF_TASK_MM", "task_struct", "mm"),
    ("OFF_MM_EXE_FILE", "mm_struct", "exe_file"),
    ("OFF_INODE_UID", "inode", "i_uid"),
    ("OFF_INODE_GID", "inode", "i_gid"),
    ("OFF_INODE_SB", "inode", "i_sb"),
    ("OFF_SB_MAGIC", "super_block", "s_magic"),
    ("OFF_SB_DEV", "super_block", "s_dev"),
    ("OFF_DENTRY_INODE", "dentry", "d_inode"),
    # fd.realpath: file->f_path walked up its dentries and the mounts they are mounted on,
    # to the process's root (task->fs->root)
    ("OFF_FILE_F_PATH", "file", "f_path"),
    ("OFF_PATH_MNT", "path", "mnt"),
    ("OFF_PATH_DENTRY", "path", "dentry"),
    ("OFF_DENTRY_PARENT", "dentry", "d_parent"),
    ("OFF_DENTRY_NAME", "dentry", "d_name"),
    ("OFF_QSTR_LEN", "qstr", "len"),
    ("OFF_QSTR_NAME", "qstr", "name"),
    ("OFF_MOUNT_MNT", "mount", "mnt"),
    ("OFF_MOUNT_PARENT", "mount", "mnt_parent"),
    ("OFF_MOUNT_MOUNTPOINT", "mount", "mnt_mountpoint"),
    ("OFF_VFSMOUNT_ROOT", "vfsmount", "mnt_root"),
    ("OFF_TASK_FS", "task_struct", "fs"),
    ("OFF_FS_ROOT", "fs_struct", "root"),
    ("OFF_MM_TOTAL_VM", "mm_struct", "total_vm"),
    ("OFF_SIGNAL_RLIM", "signal_struct", "rlim"),
    ("OFF_SIGNAL_PIDS", "signal_struct", "pids"),
    ("OFF_TASK_MAJ_FLT", "task_struct", "maj_flt"),
    ("OFF_TASK_MIN_FLT", "task_struct", "min_flt"),
)

#: An inode's times: (C macro prefix, member names by kernel generation).  6.11 and later keep
#: seconds and nanoseconds apart (``i_ctime_sec``, ``i_ctime_nsec``); before, one ``struct
#: timespec64`` (``__i_ctime`` from 6.6, ``i_ctime`` before: seconds at 0, nanoseconds at 8).
INODE_TIMES = (("OFF_INODE_CTIME", ("i_ctime_sec", "__i_ctime", "i_ctime")),
               ("OFF_INODE_MTIME", ("i_mtime_sec", "__i_mtime", "i_mtime")))

#: (C macro, struct) sizes the program uses.
WANTED_SIZES = (("SIZE_UPID", "upid"),
                # an overlayfs inode's upper dentry follows its struct inode (struct ovl_inode:
                # vfs_inode, then __upperdentry, from 4.x to 6.18), as Falco reads it
                ("SIZE_INODE", "inode"))


def kernel_offsets(path: str = VMLINUX) -> dict[str, int]:
    """The offsets of :data:`WANTED` found in the running kernel (missing ones left out)."""
    return kernel_info(path)[0]


def kernel_info(path: str = VMLINUX,
                functions: Iterable[str] = ()) -> tuple[dict[str, int], dict[str, int]]:
    """What the program needs of the running kernel's types, from one reading of its BTF: the
    offsets of :data:`WANTED` and the sizes of :data:`WANTED_SIZES` that it has, and the type
    ids of those of ``functions`` it has (the fexit mode's targets).  ({}, {}) without BTF."""
    try:
        with open(path, "rb") as f:
            btf = Btf(f.read())
    except (OSError, ValueError, struct.error):
        return {}, {}
    out = {}
    for macro, struct_name, member in WANTED:
        off = btf.member_offset(struct_name, member)
        if off is not None:
            out[macro] = off
    for macro, names in INODE_TIMES:
        for name in names:
            off = btf.member_offset("inode", name)
            if off is None:
                continue
            nsec = btf.member_offset("inode", name[:-3] + "nsec") if name.endswith("_sec") \
                else off + 8
            if nsec is not None:
                out[macro + "_SEC"], out[macro + "_NSEC"] = off, nsec
            break
    for macro, struct_name in WANTED_SIZES:
        size = btf.struct_size(struct_name)
        if size:
            out[macro] = size
    # an overlayfs inode's upper dentry, from its struct inode: exact where the kernel's BTF has
    # struct ovl_inode (overlayfs built in), else right after the struct inode
    vfs, upper = btf.member_offset("ovl_inode", "vfs_inode"), \
        btf.member_offset("ovl_inode", "__upperdentry")
    if vfs is not None and upper is not None:
        out["OFF_OVL_UPPER"] = upper - vfs
    elif "SIZE_INODE" in out:
        out["OFF_OVL_UPPER"] = (out["SIZE_INODE"] + 7) & ~7
    # the memory counters (file, anon, swap, shmem pages): 6.2 and later an array of struct
    # percpu_counter (its `count`, as Falco reads it), before a struct mm_rss_stat of atomics
    rss = btf.member_offset("mm_struct", "rss_stat")
    if rss is not None:
        if btf.struct_size("mm_rss_stat"):
            count = btf.member_offset("mm_rss_stat", "count")
            stride = 8
        else:
            count = btf.member_offset("percpu_counter", "count")
            stride = btf.struct_size("percpu_counter")
        if count is not None and stride:
            out["OFF_MM_RSS"], out["SIZE_MM_RSS"] = rss + count, stride
    funcs = {}
    for name in functions:
        tid = btf.function_id(name)
        if tid is not None:
            funcs[name] = tid
    return out, funcs
