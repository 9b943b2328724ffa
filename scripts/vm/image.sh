#!/usr/bin/env bash
# Build (once) a Debian 12 guest for the tests that need a kernel this machine's refuses:
# fexit programs (EPERM here).  The guest runs Debian's own kernel, which allows them, under
# qemu's software emulation (no hardware virtualisation here), with bcc and the project's Python
# dependencies; the project itself is shared from the host at boot (scripts/vm/run.sh).
#
# Idempotent: nothing is done when the image was built from this script and these
# dependencies (a stamp holds their hash).  Output: $VM_DIR/{vmlinuz,initrd.img,root.img}.
# About 3 minutes and 500 MB of downloads the first time, from the mirror apt uses here.
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/../.."
VM_DIR=${SYSWARDEN_VM_DIR:-/var/cache/syswarden-vm}
mkdir -p "$VM_DIR"
exec 9>"$VM_DIR/.lock"
flock 9                                   # one build at a time; a second run waits, then reuses

# The project's Python dependencies (pyproject.toml's, with the test extras).
mapfile -t DEPS < <(python3 - <<'EOF'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))
EOF
)
want=$(cat "$SELF" <(printf '%s\n' "${DEPS[@]}") | sha256sum | cut -c1-16)
if [ -f "$VM_DIR/root.img" ] && [ -f "$VM_DIR/vmlinuz" ] && [ -f "$VM_DIR/initrd.img" ] \
   && [ "$(cat "$VM_DIR/stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi

missing() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done; }
need=$(missing debootstrap qemu-system-x86 e2fsprogs)
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi

# The Debian mirror apt uses on this machine (deb822 or one-line sources), unless told.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/*.sources \
             2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \+\(http[^ ]*debian\)\/* \+bookworm .*/\1/p' \
                             /etc/apt/sources.list 2>/dev/null | head -n 1)
MIRROR=${SYSWARDEN_VM_MIRROR:-${mirror:-http://deb.debian.org/debian}}

ROOT="$VM_DIR/root"
rm -rf "$ROOT" "$VM_DIR/root.img" "$VM_DIR/stamp"
mkdir -p "$ROOT"
echo "vm: debootstrap from $MIRROR into $ROOT"
debootstrap --variant=minbase \
    --include=linux-image-amd64,linux-headers-amd64,python3-bpfcc,python3-venv,python3-pip,kmod,procps,iproute2,util-linux \
    bookworm "$ROOT" "$MIRROR" >"$VM_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$VM_DIR/debootstrap.log" >&2; exit 1; }

# The dependencies in a venv inside the guest that reaches Debian's bcc module as the host's
# does.  pip inside the chroot trusts what the host trusts (a proxy's CA, say: the host's
# settings name its bundle by a path that inside the chroot is the guest's), the index only.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/etc/ssl/certs"
cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" \
   "$ROOT/etc/ssl/certs/ca-certificates.crt"
export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_CONFIG_FILE
chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
chroot "$ROOT" /opt/venv/bin/pip install -q "${DEPS[@]}"
site=/opt/venv/lib/python3.11/site-packages
ln -sfn /usr/lib/python3/dist-packages/bcc "$ROOT$site/bcc"
ln -sfn /src "$ROOT$site/syswarden"          # the project, shared from the host at boot

# The guest's init: mount the host's share "out" and run the init.sh scripts/vm/run.sh put
# there for this boot (so the image does not change with the harness).
cat >"$ROOT/sw-init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys 2>/dev/null
modprobe 9pnet_virtio && modprobe 9p
mkdir -p /out && mount -t 9p -o trans=virtio,version=9p2000.L out /out
exec /bin/sh /out/init.sh
EOF
chmod +x "$ROOT/sw-init"
echo syswarden-vm >"$ROOT/etc/hostname"

cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)" "$VM_DIR/vmlinuz"
cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -n 1)" "$VM_DIR/initrd.img"
rm -rf "$ROOT/var/cache/apt/archives"/*.deb
echo "vm: making the root image"
mkfs.ext4 -q -F -L swroot -d "$ROOT" "$VM_DIR/root.img.tmp" 4G
mv "$VM_DIR/root.img.tmp" "$VM_DIR/root.img"
rm -rf "$ROOT"
echo "$want" >"$VM_DIR/stamp"
echo "vm: image ready in $VM_DIR"
