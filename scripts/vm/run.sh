#!/usr/bin/env bash
# Run a shell command in the guest built by scripts/vm/image.sh, from the project's root (the
# host's checkout, shared read-only at /src), and exit with its status.  Its output is printed
# after it ends (also kept in $OUT/log); the guest's console is in $OUT/console.
#
#   scripts/vm/run.sh 'python -m pytest -q tests/plugins/sources/ebpf/test_fentry.py'
#
# Software emulation (this machine has no hardware virtualisation): the guest runs about ten
# times slower than the host.  The root image is used with snapshot=on, never changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
VM_DIR=${SYSWARDEN_VM_DIR:-/var/cache/syswarden-vm}
OUT=${SYSWARDEN_VM_OUT:-$(mktemp -d /tmp/syswarden-vm.XXXXXX)}
mkdir -p "$OUT"
bash scripts/vm/image.sh

cat >"$OUT/init.sh" <<'EOF'
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /src && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mount -t tracefs nodev /sys/kernel/tracing
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
mount -t cgroup2 none /sys/fs/cgroup
mount -t 9p -o trans=virtio,version=9p2000.L,ro src /src
ip link set lo up
hostname syswarden-vm
echo "SW-VM: up, kernel $(uname -r)"
export PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 HOME=/tmp SYSWARDEN_GUEST=1
cd /src && sh /out/cmd.sh >/out/log 2>&1
echo $? >/out/rc
sync
echo o >/proc/sysrq-trigger
sleep 30
EOF
printf '%s\n' "$*" >"$OUT/cmd.sh"
rm -f "$OUT/rc"

timeout "${SYSWARDEN_VM_TIMEOUT:-2700}" qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max -smp 2 -m 2048 \
    -display none -monitor none -no-reboot -serial "file:$OUT/console" \
    -kernel "$VM_DIR/vmlinuz" -initrd "$VM_DIR/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 init=/sw-init panic=-1 quiet" \
    -drive "file=$VM_DIR/root.img,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$PWD,mount_tag=src,security_model=none,readonly=on" \
    -virtfs "local,path=$OUT,mount_tag=out,security_model=none" || true

cat "$OUT/log" 2>/dev/null || true
if [ ! -f "$OUT/rc" ]; then
    echo "vm: the guest did not finish the command; its console ($OUT/console) ends:" >&2
    tail -n 30 "$OUT/console" >&2 || true
    exit 125
fi
exit "$(cat "$OUT/rc")"
