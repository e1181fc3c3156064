#!/usr/bin/env bash
# Idempotent set-up for NeuralEmu on Debian/Ubuntu, as root.
# Installs what is missing: system packages, kernel headers for bcc, and a
# .venv (with system site packages, so that Debian's bcc imports) holding the
# pinned Python dependencies. Re-running it does nothing when all is in place.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NEURALEMU_VENV:-$ROOT/.venv}"
STAMP="$VENV/.neuralemu-deps-stamp"

log() { printf '[install-deps] %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (it installs apt packages and sets up kernel headers)"
        exit 1
    fi
}

APT_PACKAGES=(python3-venv python3-pip python3-bpfcc bpfcc-tools iperf3 iproute2 iptables
              chromium chromium-driver procps psmisc)

install_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing apt packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# bcc compiles tc programs at load time and needs /lib/modules/$(uname -r)/build.
# Where the running kernel's own headers are not packaged (cloud VMs with custom
# kernels), use Debian's cloud headers: tc programs use only UAPI headers.
install_kernel_headers() {
    local kdir="/lib/modules/$(uname -r)"
    if [ -e "$kdir/build/include" ] || [ -e "$kdir/build/Makefile" ]; then
        return 0
    fi
    if apt-cache show "linux-headers-$(uname -r)" >/dev/null 2>&1; then
        log "installing linux-headers-$(uname -r)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "linux-headers-$(uname -r)" >/dev/null
        return 0
    fi
    local hdr
    hdr=$(ls -d /usr/src/linux-headers-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$hdr" ]; then
        log "installing linux-headers-cloud-amd64 (no headers packaged for $(uname -r))"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-headers-cloud-amd64 >/dev/null
        hdr=$(ls -d /usr/src/linux-headers-*-cloud-amd64 | sort -V | tail -n 1)
    fi
    local common="${hdr%-cloud-amd64}-common"
    mkdir -p "$kdir"
    ln -sfn "$hdr" "$kdir/build"
    [ -d "$common" ] && ln -sfn "$common" "$kdir/source"
    log "linked $kdir/build -> $hdr"
}

install_venv() {
    local req="$ROOT/pyproject.toml"
    if [ -f "$STAMP" ] && [ "$STAMP" -nt "$req" ] && "$VENV/bin/python" -c 'import neuralemu, torch, bcc' 2>/dev/null; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV (system site packages, for bcc)"
        /usr/bin/python3 -m venv --system-site-packages "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
    # torch: the CPU build, pinned. Never let pip resolve a CUDA build.
    if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
        log "installing torch 2.13.0 (CPU)"
        if ls /opt/wheels/torch-2.13.0*cpu*.whl >/dev/null 2>&1; then
            "${pip[@]}" --find-links /opt/wheels "torch==2.13.0"
        else
            "${pip[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
        fi
    fi
    log "installing Python dependencies (pinned in pyproject.toml)"
    local fl=()
    [ -d /opt/wheels ] && fl=(--find-links /opt/wheels)
    "${pip[@]}" "${fl[@]}" -e "$ROOT[test]"
    touch "$STAMP"
}

need_root
install_apt
install_kernel_headers
install_venv
log "ready: $VENV"
