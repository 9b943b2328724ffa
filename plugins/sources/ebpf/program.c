// syswarden's BPF program (template).  program.py renders it: the @NAME@ markers are replaced
// by the record's declaration (record.py), constants from the config and one exit handler per
// syscall the rules need.
//
// Syscalls followed through: @ATTACH@.
//
// One record per syscall, sent on exit.  The exit handlers are reached through the syscalls'
// exit tracepoints or, where the kernel runs them (fexit mode, see fentry.py), through fexit
// programs on the syscalls' own kernel functions (__x64_sys_openat): a syscall tracepoint once
// enabled slows every syscall of every process, an fexit program only the function it is on.
// The fexit mode always reads the arguments from the registers (TASK_REGS).
//
// An exit handler needs the syscall's
// arguments, which the exit tracepoint does not carry.  With TASK_REGS (x86_64, a kernel with
// BTF and bpf_task_pt_regs: 5.15 and later) it reads them from the registers the syscall was
// entered with, which the kernel keeps at the top of the thread's stack (struct pt_regs, an ABI
// layout): one tracepoint per syscall followed.  Without, every syscall tracepoint has the same
// layout (an 8-byte common header, the syscall number, then six unsigned long arguments on
// enter), so one enter handler stores the arguments per thread and the exit handler takes them
// back: two tracepoints per syscall.  Either way the handler then reads the user strings the
// arguments point to.  No kernel structure is read at the installed headers' offsets: they do
// not match the running kernel (what is read comes from BTF, see btf.py).
//
// Two ring buffers: `proc_ring` for the process lifecycle (fork, exec, exit), `evt_ring` for
// everything else, so a flood of opens never costs an exec.  A full ring drops the record and
// counts it in `counters` (per CPU): for each category, [2*cat] records attempted and
// [2*cat+1] records dropped.
//
// No kernel header is included beyond bcc's own (its helpers, its map macros and the kernel's
// uapi/linux/bpf.h): the types used are the program's own, and parsing linux/sched.h and what
// it pulls in was a good part of the compile, which every start-up waits for.

// bcc 0.26 looks each call of bpf_probe_read_user(_str) up in the kernel's symbols, rebuilding
// a table of /proc/kallsyms every time (most of the compile's time): the same helpers under
// names of their own, which it leaves alone (the kernels this program loads on all have them).
static long (*sw_read_user)(void *dst, u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;
static long (*sw_read_user_str)(void *dst, u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user_str;
#define bpf_probe_read_user sw_read_user
#define bpf_probe_read_user_str sw_read_user_str

#define AGENT_PID_MARK "@AGENT_PID_MARK@"
#define PATH_MAX_B @PATH_MAX@          // bytes kept of one path or string (power of two)
#define ARGV_MAX_B @ARGV_MAX@          // bytes kept of argv (power of two)
#define MAX_ARGS @MAX_ARGS@            // argv entries read at most
#define SOCK_MAX 128                   // bytes kept of one sockaddr
#define SNAPLEN @SNAPLEN@                      // bytes kept of an I/O buffer (Falco's snaplen)
#define HALF 8192                      // scratch half size: every write starts below HALF
#define WAKEUP_EVERY @WAKEUP_EVERY@           // records per CPU between two reader wake-ups
#define PENDING_SLOTS @PENDING_SLOTS@         // syscalls in progress kept (a power of two)
#define TASK_REGS @TASK_REGS@                 // 1: arguments from the saved registers

// Rendered from record.py, the declaration the decoder reads too.
@RECORD@

// Where the sched tracepoints keep the fields read (their layouts change between kernels:
// tracefs.py reads them from the kernel's format files).  A context is read at constant offsets.
@TP_OFFSETS@
#define TP_FIELD(ctx, type, off) (*(type *)((char *)(ctx) + (off)))

struct sys_enter_ctx {
    u64 common;
    int nr;
    int pad;
    unsigned long a[6];
};

struct sys_exit_ctx {
    u64 common;
    int nr;
    int pad;
    long ret;
};

// The arguments of a syscall in progress, in slot (tid % PENDING_SLOTS) of an array: cheaper
// than a hash map (no lock, no allocation).  Two threads in a followed syscall at once whose ids
// share a slot: the first one's event is lost, and counted (CAT_PENDING dropped).
struct pend {
    u64 a[6];
    int nr;
    u32 tid;        // 0: free
};

struct exec_stash {
    u64 a[6];
    int nr;
    u32 argv_len;
    u32 path_len;
    u32 nargs;
    u32 env_len;
    char path[PATH_MAX_B];
    char argv[2 * ARGV_MAX_B];   // every read starts below ARGV_MAX_B
    char env[2 * ARGV_MAX_B];    // the environment, the same way
};

// The two rings must stay the first maps declared (see ring_had_room).
BPF_RINGBUF_OUTPUT(proc_ring, @PROC_PAGES@);
BPF_RINGBUF_OUTPUT(evt_ring, @EVT_PAGES@);
BPF_ARRAY(pending, struct pend, PENDING_SLOTS);
BPF_HASH(execs, u32, struct exec_stash, 1024);
struct scratch_buf {
    u8 b[2 * HALF];
};

BPF_PERCPU_ARRAY(scratch, struct scratch_buf, 1);
BPF_PERCPU_ARRAY(stash_scratch, struct exec_stash, 1);
BPF_PERCPU_ARRAY(counters, u64, 2 * NCAT);

// The context may only be read field by field, at constant offsets.
#define COPY_ARGS_N(dst, ctx, N) do { \
    if (N > 0) (dst)[0] = (ctx)->a[0]; \
    if (N > 1) (dst)[1] = (ctx)->a[1]; \
    if (N > 2) (dst)[2] = (ctx)->a[2]; \
    if (N > 3) (dst)[3] = (ctx)->a[3]; \
    if (N > 4) (dst)[4] = (ctx)->a[4]; \
    if (N > 5) (dst)[5] = (ctx)->a[5]; \
} while (0)

static __always_inline u64 count(int cat, int dropped)
{
    int k = 2 * cat + dropped;
    u64 *c = counters.lookup(&k);
    if (!c)
        return 0;
    *c += 1;
    return *c;
}

// The agent's pid (its threads' tgid) is not in the text: the loader writes it in the compiled
// instructions in place of this mark (one 64-bit load per use, which the compiler cannot fold:
// compiled.py), so that the program compiled is the same from one start to the next.
static __always_inline int is_agent(u64 id)
{
    u64 agent_pid;
    asm volatile("%0 = " AGENT_PID_MARK " ll" : "=r"(agent_pid));
    return (id >> 32) == agent_pid;
}

static __always_inline struct rec *new_rec(u64 id, u16 kind, u16 evt, s64 res)
{
    int zero = 0;
    struct rec *r = (struct rec *)scratch.lookup(&zero);
    if (!r)
        return 0;
    r->ts = bpf_ktime_get_ns();
    r->cgroup = bpf_get_current_cgroup_id();
    r->res = res;
    r->tid = (u32)id;
    r->pid = id >> 32;
    r->cpu = bpf_get_smp_processor_id();
    r->spare = 0;
    r->kind = kind;
    r->evt = evt;
    #pragma unroll
    for (int i = 0; i < STRING_SLOTS; i++)
        r->slen[i] = 0;
    r->extra = 0;
    r->ino = 0;
    return r;
}

// Append a user string; returns the new end.  Every write starts below HALF and is at most
// PATH_MAX_B long, so it stays inside the 2 * HALF scratch buffer.
static __always_inline u32 put_str(struct rec *r, u32 pos, int slot, const void *uptr)
{
    if (!uptr || pos >= HALF)
        return pos;
    u8 *buf = (u8 *)r;
    long n = bpf_probe_read_user_str(buf + (pos & (HALF - 1)), PATH_MAX_B, uptr);
    if (n <= 0)
        return pos;
    n -= 1;                                  // the NUL is not sent
    r->slen[slot & (STRING_SLOTS - 1)] = n & 0xffff;
    return pos + (n & (PATH_MAX_B - 1));
}

// Append `l` user bytes at `pos` (below HALF; `l` bounded by the caller, below HALF too).
static __always_inline u32 put_user(struct rec *r, u32 pos, int slot, const void *uptr, u64 l)
{
    u8 *buf = (u8 *)r;
    if (bpf_probe_read_user(buf + (pos & (HALF - 1)), l, uptr) != 0)
        return pos;
    r->slen[slot & (STRING_SLOTS - 1)] = l;
    return pos + l;
}

// Append raw user bytes (a sockaddr, a struct).
static __always_inline u32 put_bytes(struct rec *r, u32 pos, int slot, const void *uptr, u32 len)
{
    if (!uptr || pos >= HALF || len == 0)
        return pos;
    u64 l = len;
    if (l > SOCK_MAX)
        l = SOCK_MAX;
    asm volatile("%0 &= 0xff" : "+r"(l));    // keep the bound visible to the verifier
    return put_user(r, pos, slot, uptr, l);
}

// Append the first bytes a receive filled (Falco's evt.buffer): `got` bytes (the call's
// result) at user address `uptr`, at most SNAPLEN of them.
static __always_inline u32 put_received(struct rec *r, u32 pos, int slot, const void *uptr,
                                        s64 got)
{
    if (!uptr || pos >= HALF || got <= 0)
        return pos;
    u64 l = got > SNAPLEN ? SNAPLEN : got;
    asm volatile("%0 &= 0x1fff" : "+r"(l));  // below HALF: keep the bound visible
    if (l == 0)
        return pos;
    return put_user(r, pos, slot, uptr, l);
}

// The same from a msghdr's first iovec (recvmsg): its base, at most its length.
static __always_inline u32 put_received_msg(struct rec *r, u32 pos, int slot, const void *msg,
                                            s64 got)
{
    struct { u64 base; u64 len; } iov = {};
    u64 iovp = 0;
    if (!msg || got <= 0 || bpf_probe_read_user(&iovp, sizeof(iovp), msg + 16) != 0 || !iovp ||
        bpf_probe_read_user(&iov, sizeof(iov), (void *)iovp) != 0)
        return pos;
    return put_received(r, pos, slot, (const void *)iov.base,
                        (u64)got < iov.len ? got : (s64)iov.len);
}

// Append kernel bytes (a tracepoint's own string).
static __always_inline u32 put_kstr(struct rec *r, u32 pos, int slot, const void *kptr)
{
    if (pos >= HALF)
        return pos;
    u8 *buf = (u8 *)r;
    long n = bpf_probe_read_kernel_str(buf + (pos & (HALF - 1)), PATH_MAX_B, kptr);
    if (n <= 0)
        return pos;
    n -= 1;
    r->slen[slot & (STRING_SLOTS - 1)] = n & 0xffff;
    return pos + (n & (PATH_MAX_B - 1));
}

// Whether a record of `size` bytes would have fitted in its ring when its output failed: a
// loss with room to spare is the ring's lock refusing, not a reader falling behind (told apart
// in the drop report).  bcc 0.26 has no map method for bpf_ringbuf_query: the rings are named
// by bcc's placeholders for the first two maps declared, which it resolves when loading (a
// placeholder naming another kind of map would be refused by the verifier).
#define PROC_RING_MAP ((void *)bpf_pseudo_fd(1, -1))
#define EVT_RING_MAP ((void *)bpf_pseudo_fd(1, -2))
static __always_inline int ring_had_room(int cat, u32 size)
{
    u64 used, total;
    if (cat == CAT_PROC) {
        used = bpf_ringbuf_query(PROC_RING_MAP, BPF_RB_AVAIL_DATA);
        total = bpf_ringbuf_query(PROC_RING_MAP, BPF_RB_RING_SIZE);
    } else {
        used = bpf_ringbuf_query(EVT_RING_MAP, BPF_RB_AVAIL_DATA);
        total = bpf_ringbuf_query(EVT_RING_MAP, BPF_RB_RING_SIZE);
    }
    // what the record takes (its 8-byte header, the length rounded up to 8), and the kernel
    // refuses a record that would fill the ring to its last byte (new_prod - cons > mask)
    u64 need = (size + 8 + 7) & ~7ULL;
    return used + need < total;
}

// Send a record: 0 when it is in the ring, else not 0 (counted as dropped).
static __always_inline int send_err(struct rec *r, u32 pos, int cat)
{
    u32 size = pos & (2 * HALF - 1);
    if (size < REC_HDR)
        size = REC_HDR;
    // Wake the reader when it has caught up (the ring buffer's own notification, flags 0: a
    // record sent to a ring the reader emptied; it then reads every poll_ms while records
    // keep coming, so a busy ring wakes nobody) and every WAKEUP_EVERY records per CPU.
    u64 n = count(cat, 0);
    u64 flags = (n % WAKEUP_EVERY) == 0 ? BPF_RB_FORCE_WAKEUP : 0;
    // A failed output is not always a full ring: taking the ring's lock (a resilient spinlock
    // since 6.16) fails now and then when two CPUs contend on a virtual machine.  Up to three
    // tries; the retries are counted apart, only a record finally lost counts as dropped.  (A
    // full ring fails all three: measured, that costs an open/close flood ~2%, less than the
    // records a shorter retry would lose to contention.)
    int err = 1;
    #pragma unroll
    for (int i = 0; i < 3; i++) {
        if (i)
            count(CAT_RETRY, 0);
        if (cat == CAT_PROC)
            err = proc_ring.ringbuf_output(r, size, flags);
        else
            err = evt_ring.ringbuf_output(r, size, flags);
        if (!err)
            break;
    }
    if (err) {
        count(cat, 1);
        if (ring_had_room(cat, size))
            count(CAT_ROOM, 0);
    }
    return err;
}

static __always_inline int send(struct rec *r, u32 pos, int cat)
{
    send_err(r, pos, cat);
    return 0;
}

// Take the arguments stored at enter for this thread's syscall `nr`; 0 when there are none.
static __always_inline struct pend *pending_slot(u32 tid)
{
    int slot = tid & (PENDING_SLOTS - 1);
    return pending.lookup(&slot);
}

static __always_inline int take_pending(u32 tid, int nr, struct pend *out)
{
    struct pend *p = pending_slot(tid);
    if (!p || p->tid != tid)
        return 0;                            // not seen at enter (attached since), or lost
    int ok = p->nr == nr;
    if (ok)
        __builtin_memcpy(out, p, sizeof(*out));
    p->tid = 0;
    return ok;
}

// Store the arguments of the syscall `tid` enters; a slot still held by another thread's
// syscall in progress is taken over and that one counted lost.
static __always_inline void put_pending(u32 tid, struct pend *src)
{
    struct pend *p = pending_slot(tid);
    count(CAT_PENDING, 0);
    if (!p)
        return;
    if (p->tid != 0 && p->tid != tid)
        count(CAT_PENDING, 1);
    __builtin_memcpy(p, src, sizeof(*p));
    p->tid = tid;
}

// The registers of a thread in a syscall, as the kernel saved them on entry (x86_64).
struct sw_regs {
    u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
    u64 ip, cs, flags, sp, ss;
};

#if TASK_REGS
static __always_inline struct sw_regs *current_regs(void)
{
    return (struct sw_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}
#endif

// The arguments of the syscall `nr` this thread is leaving; 0 when they are not known.
static __always_inline int syscall_args(u32 tid, int nr, struct pend *out)
{
#if TASK_REGS
    struct sw_regs *regs = current_regs();
    out->a[0] = regs->di;
    out->a[1] = regs->si;
    out->a[2] = regs->dx;
    out->a[3] = regs->r10;
    out->a[4] = regs->r8;
    out->a[5] = regs->r9;
    out->nr = nr;
    return 1;
#else
    return take_pending(tid, nr, out);
#endif
}

// ------------------------------------------------------------------------------------------
// Enter: store the arguments (attached to sys_enter_<name> of every syscall we follow)
// ------------------------------------------------------------------------------------------

// A tracepoint's context may be read only up to its own size: a syscall with N arguments gets
// the handler that reads N (reading more fails at attach time).
static __always_inline int do_enter(struct sys_enter_ctx *ctx, int n)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    u32 tid = (u32)id;
    struct pend p = {};
    COPY_ARGS_N(p.a, ctx, n);
    p.nr = ctx->nr;
    put_pending(tid, &p);
    return 0;
}

#define ENTER_N(N) int sw_enter##N(struct sys_enter_ctx *ctx) { return do_enter(ctx, N); }

ENTER_N(0)
ENTER_N(1)
ENTER_N(2)
ENTER_N(3)
ENTER_N(4)
ENTER_N(5)
ENTER_N(6)

// clone3's flags live in a user struct: read them at enter, while it is there.
int sw_enter_clone3(struct sys_enter_ctx *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    u32 tid = (u32)id;
    struct pend p = {};
    COPY_ARGS_N(p.a, ctx, 2);
    p.nr = ctx->nr;
    u64 flags = 0;
    bpf_probe_read_user(&flags, sizeof(flags), (void *)ctx->a[0]);
    p.a[1] = flags;
    put_pending(tid, &p);
    return 0;
}

// execve/execveat: argv must be read at enter; after a successful exec the old memory is gone.
// Read the NUL-separated strings of a user array (argv, envp) into buf; returns the bytes.
// A bounded loop (the verifier follows those since Linux 5.3), not unrolled: unrolled, argv
// and the environment made most of the exec programs' instructions and of the compile's time.
static __always_inline u32 read_strings(char *buf, const char *const *arr)
{
    u32 pos = 0;
    #pragma clang loop unroll(disable)
    for (int i = 0; i < MAX_ARGS; i++) {
        const char *arg = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), &arr[i]) != 0 || !arg)
            break;
        if (pos >= ARGV_MAX_B)
            break;
        long m = bpf_probe_read_user_str(&buf[pos & (ARGV_MAX_B - 1)], ARGV_MAX_B, arg);
        if (m <= 0)
            break;
        pos += m;                            // NUL-separated, as in /proc/PID/cmdline
    }
    return pos > ARGV_MAX_B ? ARGV_MAX_B : pos;
}

static __always_inline int stash_exec(struct sys_enter_ctx *ctx, const char *path,
                                      const char *const *argv, const char *const *envp,
                                      int nargs)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    u32 tid = (u32)id;
    int zero = 0;
    struct exec_stash *s = stash_scratch.lookup(&zero);
    if (!s)
        return 0;
    s->a[0] = s->a[1] = s->a[2] = s->a[3] = s->a[4] = s->a[5] = 0;
    if (nargs == 5)
        COPY_ARGS_N(s->a, ctx, 5);
    else
        COPY_ARGS_N(s->a, ctx, 3);
    s->nr = ctx->nr;
    s->path_len = 0;
    s->argv_len = 0;
    s->nargs = 0;
    long n = bpf_probe_read_user_str(s->path, PATH_MAX_B, path);
    if (n > 0)
        s->path_len = n - 1;
    s->argv_len = read_strings(s->argv, argv);
    // the environment as the exec passes it (Falco's proc.env: `VAR=x cmd` is seen)
    s->env_len = envp ? read_strings(s->env, envp) : 0;
    count(CAT_EXEC, 0);
    if (execs.update(&tid, s) != 0)
        count(CAT_EXEC, 1);
    return 0;
}

int sw_enter_execve(struct sys_enter_ctx *ctx)
{
    return stash_exec(ctx, (const char *)ctx->a[0], (const char *const *)ctx->a[1],
                      (const char *const *)ctx->a[2], 3);
}

int sw_enter_execveat(struct sys_enter_ctx *ctx)
{
    return stash_exec(ctx, (const char *)ctx->a[1], (const char *const *)ctx->a[2],
                      (const char *const *)ctx->a[3], 5);
}

#if TASK_REGS
// The same from the registers (the fexit mode's entry program on __x64_sys_execve/execveat).
static __always_inline int stash_exec_regs(int nr)
{
    struct sw_regs *regs = current_regs();
    struct sys_enter_ctx c = {};
    c.nr = nr;
    c.a[0] = regs->di;
    c.a[1] = regs->si;
    c.a[2] = regs->dx;
    c.a[3] = regs->r10;
    c.a[4] = regs->r8;
    if (nr == NR_EXECVEAT)
        return stash_exec(&c, (const char *)c.a[1], (const char *const *)c.a[2],
                          (const char *const *)c.a[3], 5);
    return stash_exec(&c, (const char *)c.a[0], (const char *const *)c.a[1],
                      (const char *const *)c.a[2], 3);
}
#endif

// What no helper gives: read at offsets taken from the running kernel's BTF (btf.py), never
// from the installed headers.  Without them (no BTF) these are 0 and /proc is the fallback.
@BTF_OFFSETS@
static __always_inline u32 read_u32_at(void *base, u32 off)
{
    u32 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), base + off);
    return v;
}

static __always_inline void *read_ptr_at(void *base, u32 off)
{
    void *v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), base + off);
    return v;
}

// The controlling tty as /proc/PID/stat's tty_nr (0: none).
static __always_inline u32 current_tty(void)
{
#if defined(OFF_TASK_SIGNAL) && defined(OFF_SIGNAL_TTY) && defined(OFF_TTY_INDEX) && \
    defined(OFF_TTY_DRIVER) && defined(OFF_DRIVER_MAJOR) && defined(OFF_DRIVER_MINOR_START)
    void *task = (void *)bpf_get_current_task();
    void *sig = read_ptr_at(task, OFF_TASK_SIGNAL);
    if (!sig)
        return 0;
    void *tty = read_ptr_at(sig, OFF_SIGNAL_TTY);
    if (!tty)
        return 0;
    u32 index = read_u32_at(tty, OFF_TTY_INDEX);
    void *drv = read_ptr_at(tty, OFF_TTY_DRIVER);
    if (!drv)
        return 0;
    u32 major = read_u32_at(drv, OFF_DRIVER_MAJOR);
    u32 minor = read_u32_at(drv, OFF_DRIVER_MINOR_START) + index;
    return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffU) << 12);
#else
    return 0;
#endif
}

// The audit login uid (0xffffffff: unset), or 0xfffffffe when it cannot be read here.
static __always_inline u32 current_loginuid(void)
{
#ifdef OFF_TASK_LOGINUID
    return read_u32_at((void *)bpf_get_current_task(), OFF_TASK_LOGINUID);
#else
    return 0xfffffffe;
#endif
}

// The process's pid in its own pid namespace (proc.vpid: 1 for a container's first process):
// task->thread_pid->numbers[level].nr.  0 when the layout is unknown (then /proc or the parent).
static __always_inline u32 current_vpid(void)
{
#if defined(OFF_TASK_THREAD_PID) && defined(OFF_PID_LEVEL) && defined(OFF_PID_NUMBERS) && \
    defined(OFF_UPID_NR) && defined(SIZE_UPID)
    void *pid = read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_THREAD_PID);
    if (!pid)
        return 0;
    u32 level = read_u32_at(pid, OFF_PID_LEVEL) & 31;
    return read_u32_at(pid, OFF_PID_NUMBERS + level * SIZE_UPID + OFF_UPID_NR);
#else
    return 0;
#endif
}

// This process's open file `fd` (task->files->fdt->fd[fd]); 0 when unknown.
static __always_inline void *fd_file(s64 fd)
{
#if defined(OFF_TASK_FILES) && defined(OFF_FILES_FDT) && defined(OFF_FDT_FD)
    if (fd < 0)
        return 0;
#if TASK_REGS
    // Loads through the task's BTF pointer: the verifier checks each offset against the
    // running kernel's types (these come from them) and makes a fault read 0.
    char *task = (char *)bpf_get_current_task_btf();
    char *files = *(char **)(task + OFF_TASK_FILES);
    if (!files)
        return 0;
    char *fdt = *(char **)(files + OFF_FILES_FDT);
    if (!fdt)
        return 0;
    void *fds = *(void **)(fdt + OFF_FDT_FD);
#else
    void *files = read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_FILES);
    if (!files)
        return 0;
    void *fdt = read_ptr_at(files, OFF_FILES_FDT);
    if (!fdt)
        return 0;
    void *fds = read_ptr_at(fdt, OFF_FDT_FD);
#endif
    if (!fds)
        return 0;
    return read_ptr_at(fds, (u32)(fd & 0xffffff) * 8);
#else
    return 0;
#endif
}

// The inode of this process's open file `fd` (0: unknown).
static __always_inline void *fd_inode(s64 fd)
{
#ifdef OFF_FILE_INODE
    void *file = fd_file(fd);
    return file ? read_ptr_at(file, OFF_FILE_INODE) : 0;
#else
    return 0;
#endif
}

// Whether the open file `fd` is a directory (its inode's mode); 1 when that cannot be told.
static __always_inline int fd_is_dir(s64 fd)
{
#ifdef OFF_INODE_MODE
    void *inode = fd_inode(fd);
    u16 mode = 0;
    if (!inode || bpf_probe_read_kernel(&mode, sizeof(mode), inode + OFF_INODE_MODE) != 0)
        return 1;
    return (mode & S_IFMT) == S_IFDIR;
#else
    return 1;
#endif
}

// The inode number of this process's open file `fd` (0: unknown): the fd table's stamp, which
// tells a live entry from one whose number has been closed and reused since.
static __always_inline u64 inode_ino(void *inode)
{
#ifdef OFF_INODE_INO
    u64 ino = 0;
    if (inode)
        bpf_probe_read_kernel(&ino, sizeof(ino), inode + OFF_INODE_INO);
    return ino;
#else
    return 0;
#endif
}

static __always_inline u64 fd_ino(s64 fd)
{
    return inode_ino(fd_inode(fd));
}

// The device of the file system holding an inode (inode->i_sb->s_dev, major << 20 | minor in
// the kernel), encoded as stat(2)'s st_dev and Falco's `dev` argument of an open are
// (new_encode_dev); 0: unknown.
static __always_inline u32 inode_dev(void *inode)
{
#if defined(OFF_INODE_SB) && defined(OFF_SB_DEV)
    void *sb = inode ? read_ptr_at(inode, OFF_INODE_SB) : 0;
    if (!sb)
        return 0;
    u32 dev = read_u32_at(sb, OFF_SB_DEV);
    u32 major = dev >> 20, minor = dev & 0xfffff;
    return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
#else
    return 0;
#endif
}

// Whether the open that returned `fd` created its file: FMODE_CREATED in its f_mode.
#define FMODE_CREATED 0x100000
static __always_inline u32 open_created(s64 fd)
{
#ifdef OFF_FILE_F_MODE
    void *file = fd_file(fd);
    if (!file)
        return 0;
    return (read_u32_at(file, OFF_FILE_F_MODE) & FMODE_CREATED) != 0;
#else
    return 0;
#endif
}

// ------------------------------------------------------------------------------------------
// fd.realpath: the path of the file an fd holds, read from the file itself
// ------------------------------------------------------------------------------------------
//
// What d_path says, computed where bpf_d_path may not be called (a tracepoint): from
// file->f_path, each dentry's name (d_name) up its parents (d_parent) to the root of its mount,
// then on from the dentry that mount is mounted on (struct mount, which holds the struct
// vfsmount f_path.mnt points to: its mnt_parent, mnt_mountpoint), until the process's own root
// (task->fs->root: a chrooted or containerised process's path as it sees it) or the root of
// the mount tree.  The path is built from its end, in the first half of a per-CPU buffer, then
// copied to the start of the second half (RP_PATH) NUL-terminated, where the prefilter and the
// record read it.  At most RP_DEPTH steps (a component or a mount crossed each) and
// RP_MAX - 4 bytes: a path deeper or longer is sent as "..." followed by the components that
// fit, the last ones; it never starts with '/', so no absolute path in a rule matches it.
#define RP_MAX (PATH_MAX_B < 512 ? 512 : PATH_MAX_B)   // a power of two, >= NAME_MAX + 1
#define RP_DEPTH 48
struct rp_buf {
    u8 b[2 * RP_MAX];
    u32 start;                               // where the path being built starts in b
};
BPF_PERCPU_ARRAY(rp_scratch, struct rp_buf, 1);

// This CPU's realpath buffer; the path is at RP_PATH in it.
#define RP_PATH RP_MAX
static __always_inline u8 *rp_buffer(void)
{
    int zero = 0;
    struct rp_buf *rb = rp_scratch.lookup(&zero);
    return rb ? rb->b : 0;
}

// Where the path being built starts, kept in the map rather than in a register: read back,
// it is a value the verifier knows nothing of but its mask, so the states of the walk's
// iterations do not differ by the lengths written so far (they would: a state for every
// history of names and mounts crossed, beyond the verifier's budget).
#define RP_START(rb) (*(volatile u32 *)&(rb)->start)

// An index into the first half of the buffer, masked where the verifier sees it (the compiler
// drops a mask it can prove useless, the verifier cannot always prove it so).
static __always_inline u32 rp_at(u32 x)
{
    asm volatile("%0 &= %1" : "+r"(x) : "i"(RP_MAX - 1));
    return x;
}

// A dentry's d_parent and d_name (struct qstr: hash, len, name) where they follow each other,
// as in every kernel since 2.6: read in one call, a third of the walk's reads.
#if defined(OFF_DENTRY_PARENT) && defined(OFF_DENTRY_NAME) && defined(OFF_QSTR_LEN) && \
    defined(OFF_QSTR_NAME) && OFF_DENTRY_NAME == OFF_DENTRY_PARENT + 8 && OFF_QSTR_LEN == 4 && \
    OFF_QSTR_NAME == 8
#define RP_LINK_READ 1
struct rp_link {
    void *parent;
    u32 hash;
    u32 len;
    void *name;
};
#else
#define RP_LINK_READ 0
#endif

// The path of this process's open file `fd`, at RP_PATH in rp_buffer(); its length, 0 when it
// cannot be read (no BTF, no such fd, a file that is in no directory tree: a pipe, a memfd).
static __always_inline u32 fd_realpath(s64 fd)
{
#if defined(OFF_FILE_F_PATH) && defined(OFF_PATH_MNT) && defined(OFF_PATH_DENTRY) && \
    defined(OFF_DENTRY_PARENT) && defined(OFF_DENTRY_NAME) && defined(OFF_QSTR_LEN) && \
    defined(OFF_QSTR_NAME) && defined(OFF_MOUNT_MNT) && defined(OFF_MOUNT_PARENT) && \
    defined(OFF_MOUNT_MOUNTPOINT) && defined(OFF_VFSMOUNT_ROOT) && defined(OFF_TASK_FS) && \
    defined(OFF_FS_ROOT)
    void *file = fd_file(fd);
    int zero = 0;
    struct rp_buf *rb = rp_scratch.lookup(&zero);
    if (!file || !rb)
        return 0;
    u8 *b = rb->b;
    void *fs = read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_FS);
    void *root_mnt = fs ? read_ptr_at(fs, OFF_FS_ROOT + OFF_PATH_MNT) : 0;
    void *root_dentry = fs ? read_ptr_at(fs, OFF_FS_ROOT + OFF_PATH_DENTRY) : 0;
    void *vfsmnt = read_ptr_at(file, OFF_FILE_F_PATH + OFF_PATH_MNT);
    void *dentry = read_ptr_at(file, OFF_FILE_F_PATH + OFF_PATH_DENTRY);
    if (!vfsmnt || !dentry)
        return 0;
    void *mnt = vfsmnt - OFF_MOUNT_MNT;      // container_of(vfsmnt, struct mount, mnt)
    void *mnt_root = read_ptr_at(vfsmnt, OFF_VFSMOUNT_ROOT);
    RP_START(rb) = RP_MAX;                   // the path is b[start, RP_MAX)
    int done = 0;
    for (int i = 0; i < RP_DEPTH; i++) {
        if (dentry == root_dentry && vfsmnt == root_mnt) {
            done = 1;                        // the process's root
            break;
        }
        if (dentry == mnt_root) {            // the root of its mount: on from its mountpoint
            void *parent = read_ptr_at(mnt, OFF_MOUNT_PARENT);
            if (!parent || parent == mnt) {
                done = 1;                    // the root of the mount tree
                break;
            }
            dentry = read_ptr_at(mnt, OFF_MOUNT_MOUNTPOINT);
            mnt = parent;
            vfsmnt = parent + OFF_MOUNT_MNT;
            mnt_root = read_ptr_at(vfsmnt, OFF_VFSMOUNT_ROOT);
            continue;
        }
#if RP_LINK_READ
        struct rp_link link = {};            // d_parent and d_name, side by side: one read
        bpf_probe_read_kernel(&link, sizeof(link), dentry + OFF_DENTRY_PARENT);
        void *up = link.parent;
        u32 len = link.len;
        void *name = link.name;
#else
        void *up = read_ptr_at(dentry, OFF_DENTRY_PARENT);
#endif
        if (!up || up == dentry) {           // the root of a tree mounted nowhere
            if (RP_START(rb) == RP_MAX)
                return 0;
            done = 1;
            break;
        }
#if !RP_LINK_READ
        u32 len = read_u32_at(dentry, OFF_DENTRY_NAME + OFF_QSTR_LEN);
        void *name = read_ptr_at(dentry, OFF_DENTRY_NAME + OFF_QSTR_NAME);
#endif
        u32 start = RP_START(rb);
        if (len > 255 || len + 4 > start)    // no room for it, its '/' and a "..."
            break;
        start -= len;
        bpf_probe_read_kernel(b + rp_at(start), len & 0xff, name);
        start -= 1;
        b[rp_at(start)] = '/';
        RP_START(rb) = start;
        dentry = up;
    }
    u32 start = RP_START(rb);
    if (start < 3 || start > RP_MAX)
        return 0;
    if (!done) {                             // cut: start >= 3 is left for the mark
        start -= 3;
        b[rp_at(start)] = '.';
        b[rp_at(start + 1)] = '.';
        b[rp_at(start + 2)] = '.';
    } else if (start == RP_MAX) {            // the root itself
        start -= 1;
        b[rp_at(start)] = '/';
    }
    u32 n = rp_at(RP_MAX - start);
    bpf_probe_read_kernel(b + RP_PATH, n, b + rp_at(start));
    b[RP_PATH + rp_at(n)] = 0;
    return n;
#else
    return 0;
#endif
}

// Append the realpath fd_realpath() left (`n` bytes, 0: none).
static __always_inline u32 put_realpath(struct rec *r, u32 pos, int slot, u32 n)
{
    u8 *b = rp_buffer();
    if (!b || !n || pos >= HALF)
        return pos;
    n &= RP_MAX - 1;
    bpf_probe_read_kernel((u8 *)r + (pos & (HALF - 1)), n, b + RP_PATH);
    r->slen[slot & (STRING_SLOTS - 1)] = n;
    return pos + n;
}

// The device of the file system holding an inode as the kernel keeps it (major << 20 | minor).
static __always_inline u32 inode_kdev(void *inode)
{
#if defined(OFF_INODE_SB) && defined(OFF_SB_DEV)
    void *sb = inode ? read_ptr_at(inode, OFF_INODE_SB) : 0;
    return sb ? read_u32_at(sb, OFF_SB_DEV) : 0;
#else
    return 0;
#endif
}

// Whether the decoder reads the sockaddr at user address `addr` (`len` bytes): AF_INET of 8
// bytes or more, AF_INET6 of 24, AF_UNIX, no longer than the kernel takes (128).
static __always_inline int sockaddr_known(u64 addr, u32 len)
{
    u16 fam = 0;
    if (!addr || len < 2 || len > 128 || bpf_probe_read_user(&fam, sizeof(fam), (void *)addr))
        return 0;
    return (fam == 2 && len >= 8) || (fam == 10 && len >= 24) || fam == 1;
}

// Append one end of the IP socket `fd` as a struct sockaddr_in/in6: its local end (what
// getsockname would say) or, with `peer`, the remote one (getpeername).  file->private_data is
// the struct socket, socket->sk its struct sock, which starts with struct sock_common
// (addresses, the host-order local port, the network-order remote port, the family).
static __always_inline u32 put_sock_end(struct rec *r, u32 pos, int slot, s64 fd, int peer)
{
#if defined(OFF_FILE_PRIVATE) && defined(OFF_SOCKET_SK) && defined(OFF_SKC_FAMILY) && \
    defined(OFF_SKC_NUM) && defined(OFF_SKC_RCV_SADDR) && defined(OFF_SKC_V6_RCV_SADDR) && \
    defined(OFF_SKC_DPORT) && defined(OFF_SKC_DADDR) && defined(OFF_SKC_V6_DADDR)
    if (pos >= HALF)
        return pos;
    void *file = fd_file(fd);
    if (!file)
        return pos;
    void *sock = read_ptr_at(file, OFF_FILE_PRIVATE);
    if (!sock)
        return pos;
    void *sk = read_ptr_at(sock, OFF_SOCKET_SK);
    if (!sk)
        return pos;
    u16 family = 0, port = 0;
    bpf_probe_read_kernel(&family, sizeof(family), sk + OFF_SKC_FAMILY);
    if (family != AF_INET && family != AF_INET6)
        return pos;
    u8 *buf = (u8 *)r + (pos & (HALF - 1));
    if (peer) {
        bpf_probe_read_kernel(&port, sizeof(port), sk + OFF_SKC_DPORT);   // network order
    } else {
        bpf_probe_read_kernel(&port, sizeof(port), sk + OFF_SKC_NUM);
        port = (port >> 8) | (port << 8);
    }
    *(u16 *)buf = family;
    *(u16 *)(buf + 2) = port;
    *(u32 *)(buf + 4) = 0;
    if (family == AF_INET) {
        bpf_probe_read_kernel(buf + 4, 4, sk + (peer ? OFF_SKC_DADDR : OFF_SKC_RCV_SADDR));
        *(u64 *)(buf + 8) = 0;
        r->slen[slot & (STRING_SLOTS - 1)] = 16;
        return pos + 16;
    }
    bpf_probe_read_kernel(buf + 8, 16, sk + (peer ? OFF_SKC_V6_DADDR : OFF_SKC_V6_RCV_SADDR));
    *(u32 *)(buf + 24) = 0;
    r->slen[slot & (STRING_SLOTS - 1)] = 28;
    return pos + 28;
#else
    return pos;
#endif
}

// Whether the kernel's socket can be read whole here: its family, type, protocol (SOCK_INFO)
// and both ends (put_sock_end).  The socket prefilter (sock_class) filters only then: the fd
// table takes from these what it would otherwise learn from the socket's earlier calls.
#if defined(OFF_FILE_INODE) && defined(OFF_INODE_MODE) && defined(OFF_FILE_PRIVATE) && \
    defined(OFF_SOCKET_SK) && defined(OFF_SOCKET_TYPE) && defined(OFF_SKC_FAMILY) && \
    defined(OFF_SK_PROTOCOL) && defined(OFF_SKC_NUM) && defined(OFF_SKC_RCV_SADDR) && \
    defined(OFF_SKC_V6_RCV_SADDR) && defined(OFF_SKC_DPORT) && defined(OFF_SKC_DADDR) && \
    defined(OFF_SKC_V6_DADDR)
#define SOCK_FACTS 1
#else
#define SOCK_FACTS 0
#endif

// The struct socket of this process's fd `fd` (0: not a socket, or not read here).
static __always_inline void *sock_of(s64 fd)
{
#if defined(OFF_FILE_INODE) && defined(OFF_INODE_MODE) && defined(OFF_FILE_PRIVATE)
    void *file = fd_file(fd);
    void *inode = file ? read_ptr_at(file, OFF_FILE_INODE) : 0;
    u16 mode = 0;
    if (!inode || bpf_probe_read_kernel(&mode, sizeof(mode), inode + OFF_INODE_MODE) ||
        (mode & S_IFMT) != S_IFSOCK)         // private_data is no socket
        return 0;
    return read_ptr_at(file, OFF_FILE_PRIVATE);
#else
    return 0;
#endif
}

// The address family of this process's socket `fd` (0: not a socket, or not read here).
static __always_inline u32 sock_family(s64 fd)
{
#if defined(OFF_SOCKET_SK) && defined(OFF_SKC_FAMILY)
    void *sock = sock_of(fd);
    void *sk = sock ? read_ptr_at(sock, OFF_SOCKET_SK) : 0;
    u16 family = 0;
    if (!sk || bpf_probe_read_kernel(&family, sizeof(family), sk + OFF_SKC_FAMILY))
        return 0;
    return family;
#else
    return 0;
#endif
}

// A socket call's record extra (SOCK_INFO_OF): the family, type and protocol of this
// process's socket `fd`; 0 when it is not a socket or they cannot all be read here.
static __always_inline u32 sock_info(s64 fd)
{
#if SOCK_FACTS
    void *sock = sock_of(fd);
    void *sk = sock ? read_ptr_at(sock, OFF_SOCKET_SK) : 0;
    u16 family = 0, type = 0;
    u8 protocol = 0;
    if (!sk || bpf_probe_read_kernel(&family, sizeof(family), sk + OFF_SKC_FAMILY) ||
        bpf_probe_read_kernel(&type, sizeof(type), sock + OFF_SOCKET_TYPE) ||
        bpf_probe_read_kernel(&protocol, sizeof(protocol), sk + OFF_SK_PROTOCOL) || !family)
        return 0;
    return SOCK_INFO_OF(family, type, protocol);
#else
    return 0;
#endif
}

// Append both ends of this process's IP socket `fd` (its record's SOCK_INFO says `info`):
// the local one in `slot`, the peer in `slot + 1` when `peer`.
static __always_inline u32 put_sock_ends(struct rec *r, u32 pos, int slot, s64 fd, u32 info,
                                         int peer)
{
    u32 family = info & 0xff;
    if (family != AF_INET && family != AF_INET6)
        return pos;
    pos = put_sock_end(r, pos, slot, fd, 0);
    if (peer)
        pos = put_sock_end(r, pos, slot + 1, fd, 1);
    return pos;
}

// In place of an address the decoder would not read (a connect's AF_UNSPEC...): an IP
// socket's peer as the kernel has it, a UNIX socket's family alone (an unnamed sockaddr_un).
static __always_inline u32 put_unread_peer(struct rec *r, u32 pos, int slot, s64 fd)
{
    u32 family = sock_family(fd);
    if (family == 2 || family == 10)
        return put_sock_end(r, pos, slot, fd, 1);
    if (family != 1 || pos >= HALF)
        return pos;
    *(u16 *)((u8 *)r + (pos & (HALF - 1))) = 1;
    r->slen[slot & (STRING_SLOTS - 1)] = 2;
    return pos + 2;
}

// The current task's credentials (task->cred: the subjective ones, as Falco reads them).
static __always_inline void *current_cred(void)
{
#ifdef OFF_TASK_CRED
    return read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_CRED);
#else
    return 0;
#endif
}

static __always_inline u64 read_u64_at(void *base, u32 off)
{
    u64 v = 0;
    bpf_probe_read_kernel(&v, sizeof(v), base + off);
    return v;
}

// The effective capability set now (a credential call's record sends it), all ones when it
// cannot be read (the decoder then keeps what it knew).
static __always_inline u64 current_cap_effective(void)
{
#if defined(OFF_TASK_CRED) && defined(OFF_CRED_CAP_EFFECTIVE)
    void *cred = current_cred();
    if (cred)
        return read_u64_at(cred, OFF_CRED_CAP_EFFECTIVE);
#endif
    return ~0ULL;
}

// An inode time (ns since the epoch) at the offsets of its seconds and nanoseconds.
static __always_inline u64 inode_time(void *inode, u32 sec_off, u32 nsec_off)
{
    s64 sec = 0;
    u32 nsec = 0;
    bpf_probe_read_kernel(&sec, sizeof(sec), inode + sec_off);
    bpf_probe_read_kernel(&nsec, sizeof(nsec), inode + nsec_off);
    return (u64)sec * 1000000000ULL + nsec;
}

// The new image's memory (kB), page faults and fd limit, as Falco's exec event has them: the
// mm's total_vm and its resident (file + anon + shmem) and swapped counters, the task's fault
// counts, signal->rlim[RLIMIT_NOFILE].rlim_cur.
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SWAPENTS 2
#define MM_SHMEMPAGES 3
#define RLIMIT_NOFILE 7
#define PAGE_KB 4
static __always_inline void fill_resources(struct exec_tail *t)
{
#if defined(OFF_TASK_MM) && defined(OFF_MM_TOTAL_VM) && defined(OFF_MM_RSS) && \
    defined(SIZE_MM_RSS) && defined(OFF_TASK_SIGNAL) && defined(OFF_SIGNAL_RLIM) && \
    defined(OFF_TASK_MAJ_FLT) && defined(OFF_TASK_MIN_FLT)
    void *task = (void *)bpf_get_current_task();
    void *mm = read_ptr_at(task, OFF_TASK_MM);
    void *sig = read_ptr_at(task, OFF_TASK_SIGNAL);
    if (!mm || !sig)
        return;
    s64 file = read_u64_at(mm, OFF_MM_RSS + MM_FILEPAGES * SIZE_MM_RSS);
    s64 anon = read_u64_at(mm, OFF_MM_RSS + MM_ANONPAGES * SIZE_MM_RSS);
    s64 swap = read_u64_at(mm, OFF_MM_RSS + MM_SWAPENTS * SIZE_MM_RSS);
    s64 shmem = read_u64_at(mm, OFF_MM_RSS + MM_SHMEMPAGES * SIZE_MM_RSS);
    s64 rss = (file > 0 ? file : 0) + (anon > 0 ? anon : 0) + (shmem > 0 ? shmem : 0);
    t->vm_size = read_u64_at(mm, OFF_MM_TOTAL_VM) * PAGE_KB;
    t->vm_rss = rss * PAGE_KB;
    t->vm_swap = (swap > 0 ? swap : 0) * PAGE_KB;
    t->pf_major = read_u64_at(task, OFF_TASK_MAJ_FLT);
    t->pf_minor = read_u64_at(task, OFF_TASK_MIN_FLT);
    t->fdlimit = read_u64_at(sig, OFF_SIGNAL_RLIM + RLIMIT_NOFILE * 16);
    t->flags |= EXE_RESOURCES;
#endif
}

// The process group and session ids in the process's own pid namespace (proc.vpgid, proc.sid):
// task->signal->pids[PIDTYPE_PGID, PIDTYPE_SID], each a struct pid read at the level of the
// task's own (0 when it lives in an ancestor namespace, invisible from the process's).
#define PIDTYPE_PGID 2
#define PIDTYPE_SID 3
static __always_inline u32 pid_nr_at(void *pid, u32 level)
{
#if defined(OFF_PID_LEVEL) && defined(OFF_PID_NUMBERS) && defined(OFF_UPID_NR) && \
    defined(SIZE_UPID)
    if (!pid || (read_u32_at(pid, OFF_PID_LEVEL) & 31) < level)
        return 0;
    return read_u32_at(pid, OFF_PID_NUMBERS + (level & 31) * SIZE_UPID + OFF_UPID_NR);
#else
    return 0;
#endif
}

static __always_inline void fill_groups(struct exec_tail *t)
{
    t->vpgid = t->vsid = 0;
#if defined(OFF_TASK_SIGNAL) && defined(OFF_SIGNAL_PIDS) && defined(OFF_TASK_THREAD_PID) && \
    defined(OFF_PID_LEVEL)
    void *task = (void *)bpf_get_current_task();
    void *own = read_ptr_at(task, OFF_TASK_THREAD_PID);
    void *sig = read_ptr_at(task, OFF_TASK_SIGNAL);
    if (!own || !sig)
        return;
    u32 level = read_u32_at(own, OFF_PID_LEVEL) & 31;
    t->vpgid = pid_nr_at(read_ptr_at(sig, OFF_SIGNAL_PIDS + PIDTYPE_PGID * 8), level);
    t->vsid = pid_nr_at(read_ptr_at(sig, OFF_SIGNAL_PIDS + PIDTYPE_SID * 8), level);
    t->flags |= EXE_GROUPS;
#endif
}

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define CAP_DAC_OVERRIDE 1

// What an exec record says of the new image beside its strings: the credentials and the
// executable file (task->mm->exe_file) as the kernel has them now.
static __always_inline void fill_exec_tail(struct exec_tail *t)
{
    u64 ug = bpf_get_current_uid_gid();      // the real ids, if the cred cannot be read
    t->euid = (u32)ug;
    t->egid = ug >> 32;
    t->cap_effective = t->cap_permitted = t->cap_inheritable = 0;
    t->exe_ino = t->exe_ctime = t->exe_mtime = t->fdlimit = 0;
    t->vm_size = t->vm_rss = t->vm_swap = t->pf_major = t->pf_minor = 0;
    t->flags = 0;
    fill_resources(t);
    fill_groups(t);
#if defined(OFF_TASK_CRED) && defined(OFF_CRED_EUID) && defined(OFF_CRED_EGID) && \
    defined(OFF_CRED_CAP_EFFECTIVE) && defined(OFF_CRED_CAP_PERMITTED) && \
    defined(OFF_CRED_CAP_INHERITABLE)
    void *cred = current_cred();
    if (cred) {
        t->euid = read_u32_at(cred, OFF_CRED_EUID);
        t->egid = read_u32_at(cred, OFF_CRED_EGID);
        t->cap_effective = read_u64_at(cred, OFF_CRED_CAP_EFFECTIVE);
        t->cap_permitted = read_u64_at(cred, OFF_CRED_CAP_PERMITTED);
        t->cap_inheritable = read_u64_at(cred, OFF_CRED_CAP_INHERITABLE);
        t->flags |= EXE_CREDS;
    }
#endif
#if defined(OFF_TASK_MM) && defined(OFF_MM_EXE_FILE) && defined(OFF_FILE_INODE) && \
    defined(OFF_INODE_INO) && defined(OFF_INODE_MODE) && defined(OFF_INODE_UID) && \
    defined(OFF_INODE_GID) && defined(OFF_INODE_SB) && defined(OFF_SB_MAGIC) && \
    defined(OFF_INODE_CTIME_SEC) && defined(OFF_INODE_MTIME_SEC) && defined(OFF_OVL_UPPER)
    void *mm = read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_MM);
    void *file = mm ? read_ptr_at(mm, OFF_MM_EXE_FILE) : 0;
    void *inode = file ? read_ptr_at(file, OFF_FILE_INODE) : 0;
    if (!inode)
        return;
    t->exe_ino = read_u64_at(inode, OFF_INODE_INO);
    t->exe_ctime = inode_time(inode, OFF_INODE_CTIME_SEC, OFF_INODE_CTIME_NSEC);
    t->exe_mtime = inode_time(inode, OFF_INODE_MTIME_SEC, OFF_INODE_MTIME_NSEC);
    t->flags |= EXE_FILE;
    void *sb = read_ptr_at(inode, OFF_INODE_SB);
    if (sb && read_u64_at(sb, OFF_SB_MAGIC) == OVERLAYFS_SUPER_MAGIC &&
        read_ptr_at(inode, OFF_OVL_UPPER))
        t->flags |= EXE_UPPER_LAYER;
    // writable by the process: its owner's, group's or others' write bit as its effective
    // ids fall, or CAP_DAC_OVERRIDE (inode_permission's MAY_WRITE without the ACLs)
    u16 mode = 0;
    bpf_probe_read_kernel(&mode, sizeof(mode), inode + OFF_INODE_MODE);
    u32 w;
    if (read_u32_at(inode, OFF_INODE_UID) == t->euid)
        w = mode & 0200;
    else if (read_u32_at(inode, OFF_INODE_GID) == t->egid)
        w = mode & 0020;
    else
        w = mode & 0002;
    if (w || (t->flags & EXE_CREDS && t->cap_effective >> CAP_DAC_OVERRIDE & 1))
        t->flags |= EXE_WRITABLE;
#endif
}

// The rules' open prefilter, rendered by open_filter.py (OPEN_FILTER 0: every open is sent).
// Process names in the kernel, rendered by name_filter.py.
@NAME_FILTER@

@OPEN_FILTER@

// The rules' socket prefilter, rendered by sock_filter.py (SOCK_FILTER 0: every family sent).
@SOCK_FILTER@

// Send the exec record: the stash (path, argv) plus what the new image says.
static __always_inline int send_exec(u64 id, u32 stash_tid, s64 res, u16 kind,
                                     const void *kfilename, u32 old_pid)
{
    struct exec_stash *s = execs.lookup(&stash_tid);
    struct rec *r = new_rec(id, kind, 0, res);
    if (!r)
        return -1;
    r->extra = old_pid;
    u8 *buf = (u8 *)r;
    struct exec_tail *t = (struct exec_tail *)(buf + REC_HDR);
    fill_exec_tail(t);
    bpf_get_current_comm(t->comm, sizeof(t->comm));
    u32 pos = REC_HDR + TAIL_SIZE;
    // the filename the kernel resolved (sched_process_exec), then the stashed path and argv
    if (kfilename)
        pos = put_kstr(r, pos, SLOT_FILENAME, kfilename);
    if (s) {
        __builtin_memcpy(r->a, s->a, sizeof(r->a));
        r->evt = s->nr & 0xffff;             // the syscall number: execve or execveat
        u32 pl = s->path_len & (PATH_MAX_B - 1);
        if (pos < HALF && pl) {
            bpf_probe_read_kernel(buf + (pos & (HALF - 1)), pl, s->path);
            r->slen[SLOT_PATH] = pl;
            pos += pl;
        }
        u32 al = s->argv_len;
        if (al > ARGV_MAX_B)
            al = ARGV_MAX_B;
        if (pos < HALF && al) {
            bpf_probe_read_kernel(buf + (pos & (HALF - 1)), al & (ARGV_MAX_B * 2 - 1), s->argv);
            r->slen[SLOT_ARGV] = al;
            pos += al;
        }
        u32 el = s->env_len;
        if (el > ARGV_MAX_B)
            el = ARGV_MAX_B;
        if (pos < HALF && el) {
            bpf_probe_read_kernel(buf + (pos & (HALF - 1)), el & (ARGV_MAX_B * 2 - 1), s->env);
            r->slen[SLOT_ENV] = el;
            pos += el;
        }
        execs.delete(&stash_tid);
    }
    EXEC_PUT(r, current_vpid(), current_tty(), current_loginuid());
    return send_err(r, pos, CAT_PROC);
}

int sw_sched_exec(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    const void *fname = ctx + (TP_FIELD(ctx, u32, TP_EXEC_FILENAME) & 0xffff);  // __data_loc
    int old_pid = TP_FIELD(ctx, int, TP_EXEC_OLD_PID);
    int err = send_exec(id, (u32)old_pid, 0, KIND_EXEC, fname, old_pid);
    names_exec(id >> 32, err);
    return 0;
}

// A failed exec: its stash is still there (a successful one was sent by sw_sched_exec).
static __always_inline int do_exit_exec(s64 ret)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    u32 tid = (u32)id;
    if (ret == 0) {
        execs.delete(&tid);
        return 0;
    }
    send_exec(id, tid, ret, KIND_EXEC_FAIL, 0, 0);
    return 0;
}

int sw_exit_exec(struct sys_exit_ctx *ctx)
{
    return do_exit_exec(ctx->ret);
}

// Not filtered for the agent: the agent's own children (a program output) must be known.
int sw_sched_fork(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    int child = TP_FIELD(ctx, int, TP_FORK_CHILD_PID);
    struct rec *r = new_rec(id, KIND_FORK, 0, child);
    if (!r)
        return 0;
    r->extra = child;
    // the clone flags (CLONE_THREAD tells a thread): from the parent's registers, or from
    // what the clone/clone3 enter stored (clone3's: clone_args.flags, read there)
    u64 nr = 0xffff;                         // not known (a kernel thread's fork)
    u64 cflags = 0;
#if TASK_REGS
    struct sw_regs *regs = current_regs();
    nr = regs->orig_ax;
    if (nr == NR_CLONE) {
        cflags = regs->di;
    } else if (nr == NR_CLONE3) {            // flags: the first field of struct clone_args
        bpf_probe_read_user(&cflags, sizeof(cflags), (void *)regs->di);
    } else if (nr != NR_FORK && nr != NR_VFORK) {
        nr = 0xffff;
    }
#else
    struct pend *p = pending_slot(tid);
    if (p && p->tid == tid) {
        nr = p->nr & 0xffff;
        cflags = nr == NR_CLONE3 ? p->a[1] : nr == NR_CLONE ? p->a[0] : 0;
    }
#endif
    // the agent's own threads: their exits are not sent (is_agent), so neither are their births
    // (a table entry each, never ended); its child processes are, their exits too
    if (is_agent(id) && (cflags & 0x10000))
        return 0;
    r->evt = nr;
    FORK_PUT(r, cflags, (u32)bpf_get_current_uid_gid(), bpf_get_current_uid_gid() >> 32);
    u32 pos = REC_HDR;
    u8 *buf = (u8 *)r;
    bpf_get_current_comm(buf + pos, 16);
    r->slen[0] = 16;
    pos += 16;
    // a new thread (CLONE_THREAD in clone's or clone3's flags) is no process of its own
    int err = send_err(r, pos, CAT_PROC);
    if (!(cflags & 0x10000))
        names_fork(id >> 32, (u32)child, err);
    return 0;
}

// Whether the exiting thread is its process's last, where sched_process_exit does not say
// (its group_dead field is from 6.16): do_exit has counted the thread out of signal->live by then.
static __always_inline u32 current_group_dead(u64 id)
{
#if defined(OFF_TASK_SIGNAL) && defined(OFF_SIGNAL_LIVE)
    void *sig = read_ptr_at((void *)bpf_get_current_task(), OFF_TASK_SIGNAL);
    if (sig)
        return read_u32_at(sig, OFF_SIGNAL_LIVE) == 0;
#endif
    return (u32)id == id >> 32;              // not known: the leader's exit ends the process
}

int sw_sched_exit(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (is_agent(id))
        return 0;
    u32 tid = (u32)id;
    struct pend *p = pending_slot(tid);
    if (p && p->tid == tid)
        p->tid = 0;
    execs.delete(&tid);
#ifdef TP_EXIT_GROUP_DEAD
    u32 dead = TP_FIELD(ctx, u8, TP_EXIT_GROUP_DEAD);
#else
    u32 dead = current_group_dead(id);
#endif
    if (dead) {
        u32 tgid = id >> 32;
        proc_names.delete(&tgid);
    }
    struct rec *r = new_rec(id, KIND_EXIT, 0, 0);
    if (!r)
        return 0;
    r->extra = dead;
    return send(r, REC_HDR, CAT_PROC);
}

// ------------------------------------------------------------------------------------------
// Exit handlers, one per syscall (rendered by program.py)
// ------------------------------------------------------------------------------------------

@EXIT_HANDLERS@
