"""The few ``bpf(2)`` commands bcc does not wrap, called through ctypes.

- ``BPF_PROG_TEST_RUN``: run a loaded program on a crafted packet (tests).
- ``BPF_PROG_GET_NEXT_ID`` / ``BPF_PROG_GET_FD_BY_ID`` / ``BPF_OBJ_GET_INFO_BY_FD``:
  list the loaded programs by name (``testbed status``), without bpftool.

Struct layouts follow ``include/uapi/linux/bpf.h`` (``union bpf_attr``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

SYS_BPF = 321  # x86_64
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd={cmd}): {os.strerror(err)}")
    return ret


# struct __sk_buff (uapi): we only read and write the leading u32 fields.
SKB_FIELDS = ("len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present",
              "vlan_tci", "vlan_proto", "priority", "ingress_ifindex", "ifindex",
              "tc_index")
SKB_CTX_SIZE = 192   # sizeof(struct __sk_buff) on 6.x


def prog_test_run(prog_fd: int, packet: bytes, *, mark: int = 0, repeat: int = 1,
                  ctx: bool = True) -> dict:
    """Run a tc program once on ``packet`` (an Ethernet frame).

    Returns ``{"retval", "duration_ns", "data_out", "mark"}``; ``mark`` is
    ``skb->mark`` after the run, read back from the context (the kernel copies
    ``struct __sk_buff`` out for tc programs).
    """
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(len(packet) + 256)
    ctx_in = ctypes.create_string_buffer(SKB_CTX_SIZE)
    ctx_out = ctypes.create_string_buffer(SKB_CTX_SIZE)
    struct.pack_into("=I", ctx_in, 8, mark)
    attr = ctypes.create_string_buffer(128)
    # prog_fd, retval, data_size_in, data_size_out, data_in, data_out, repeat,
    # duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out, flags, cpu, batch_size
    struct.pack_into("=IIIIQQIIIIQQIII", attr, 0, prog_fd, 0, len(packet), len(data_out),
                     ctypes.addressof(data_in), ctypes.addressof(data_out), repeat, 0,
                     SKB_CTX_SIZE if ctx else 0, SKB_CTX_SIZE if ctx else 0,
                     ctypes.addressof(ctx_in) if ctx else 0,
                     ctypes.addressof(ctx_out) if ctx else 0, 0, 0, 0)
    _bpf(BPF_PROG_TEST_RUN, attr)
    (_, retval, _, size_out, _, _, _, duration) = struct.unpack_from("=IIIIQQII", attr, 0)
    out = {"retval": retval, "duration_ns": duration, "data_out": data_out.raw[:size_out]}
    if ctx:
        out["mark"] = struct.unpack_from("=I", ctx_out, 8)[0]
    return out


def list_programs() -> list[dict]:
    """Every loaded BPF program: ``{"id", "name", "type"}`` (needs root)."""
    progs = []
    prog_id = 0
    while True:
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("=I", attr, 0, prog_id)
        try:
            _bpf(BPF_PROG_GET_NEXT_ID, attr)
        except OSError:
            break
        prog_id = struct.unpack_from("=I", attr, 4)[0]
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("=I", attr, 0, prog_id)
        try:
            fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
        except OSError:
            continue      # gone meanwhile
        try:
            info = ctypes.create_string_buffer(256)
            attr = ctypes.create_string_buffer(16)
            struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
            _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
            # struct bpf_prog_info: type u32, id u32, tag[8], jited_prog_len, xlated_prog_len,
            # jited_prog_insns u64, xlated_prog_insns u64, load_time u64, created_by_uid u32,
            # nr_map_ids u32, map_ids u64, name[16]
            ptype, pid = struct.unpack_from("=II", info, 0)
            name = info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
            progs.append({"id": pid, "name": name, "type": ptype})
        finally:
            os.close(fd)
    return progs
