"""Small helpers around network namespaces: run a command in one, or enter one.

Commands go through iproute2 (``ip``, ``tc``) and iptables, which are present on
every host that runs the datapath. Sockets that must live in a namespace (the
NFQUEUE netlink socket, the rtnetlink socket that attaches tc filters) are
created inside :func:`entered`, which switches only the calling thread with
``setns(2)`` and switches it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_setns_lock = threading.Lock()


class CommandError(RuntimeError):
    """A kernel-configuration command failed; carries the command and its stderr."""

    def __init__(self, cmd: list[str], rc: int, stderr: str) -> None:
        self.cmd = cmd
        self.rc = rc
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(cmd)} -> rc={rc}: {self.stderr}")


def run(cmd: list[str], *, ns: str | None = None, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (in namespace ``ns`` when given) and return the completed process."""
    full = (["ip", "netns", "exec", ns] + cmd) if ns else list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise CommandError(full, proc.returncode, proc.stderr)
    return proc


def ip_batch(lines: list[str], *, ns: str | None = None, force: bool = False) -> None:
    """Run many ``ip`` commands in one process (``ip -batch``); fast and atomic enough."""
    if not lines:
        return
    cmd = ["ip"] + (["-n", ns] if ns else []) + (["-force"] if force else []) + ["-batch", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, input="\n".join(lines) + "\n")
    if proc.returncode != 0 and not force:
        raise CommandError(cmd, proc.returncode, proc.stderr)


def list_netns() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir())


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def pids_in(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in proc.stdout.split() if x.strip().isdigit()]


def iptables_bin(v6: bool = False) -> str:
    """iptables-legacy when present (the NFQUEUE xtables target; nft `queue` is often absent)."""
    names = ["ip6tables-legacy", "ip6tables"] if v6 else ["iptables-legacy", "iptables"]
    for name in names:
        if shutil.which(name):
            return name
    raise CommandError([names[-1]], 127, "not installed")


@contextmanager
def entered(ns: str | None):
    """Switch the calling thread into namespace ``ns`` (None: stay) and back afterwards."""
    if ns is None:
        yield
        return
    with _setns_lock:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(str(NETNS_DIR / ns), os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns(back): {os.strerror(err)}")
        finally:
            os.close(own)
            os.close(target)
