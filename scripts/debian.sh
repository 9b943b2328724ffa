# Shared by the scripts that build a Debian 12 root file system with debootstrap (sourced).

# The Debian mirror apt uses on this machine (deb822 or one-line sources), unless
# SYSWARDEN_DEBIAN_MIRROR says another: no other registry is reachable on some machines.
debian_mirror() {
    local mirror
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/*.sources \
                 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \+\(http[^ ]*debian\)\/* \+bookworm .*/\1/p' \
                                 /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${SYSWARDEN_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"
}

# pip inside the chroot ROOT trusts what the host trusts (a proxy's CA: the host's settings
# name its bundle by a path that inside the chroot is the guest's), the index only.
chroot_pip_env() {
    local root=$1
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mkdir -p "$root/etc/ssl/certs"
    cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" \
       "$root/etc/ssl/certs/ca-certificates.crt"
    export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
    unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_CONFIG_FILE
}

# The project's Python dependencies (pyproject.toml's; with "test", the test extras too).
project_deps() {
    python3 - "$@" <<'PY'
import sys, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = p["dependencies"] + (p["optional-dependencies"]["test"] if "test" in sys.argv[1:] else [])
print("\n".join(deps))
PY
}
