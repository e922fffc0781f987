"""bpf(2): loading a program, attaching the device filter to a cgroup, and
reading back what the kernel holds (for the tests and `minict inspect`).

bpf(2) has no wrapper in the C library: it is called by number (flags.SYS_BPF),
with `union bpf_attr` packed by hand for each command, as the comments show.
"""

import ctypes
import errno
import os
import struct

from .flags import (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_LICENSE, BPF_OBJ_GET_INFO_BY_FD,
                    BPF_PROG_ATTACH, BPF_PROG_GET_FD_BY_ID, BPF_PROG_GET_NEXT_ID, BPF_PROG_LOAD,
                    BPF_PROG_QUERY, BPF_PROG_TYPE_CGROUP_DEVICE, SYS_BPF)
from .libc import check, libc


def _bpf(command: int, attr: bytes, *shown) -> tuple[int, bytes]:
    """bpf(command, attr, sizeof attr); returns the result and the attr as
    the kernel left it (some commands answer in it)."""
    machine = os.uname().machine
    number = SYS_BPF.get(machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2): minict does not know its number on {machine}")
    buffer = ctypes.create_string_buffer(attr, len(attr))
    result = libc().syscall(ctypes.c_long(number), ctypes.c_long(command), buffer,
                             ctypes.c_long(len(attr)))
    check(result, "bpf", _BPF_COMMANDS.get(command, command), *shown)
    return result, buffer.raw


_BPF_COMMANDS = {BPF_PROG_LOAD: "BPF_PROG_LOAD", BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
                 BPF_PROG_GET_NEXT_ID: "BPF_PROG_GET_NEXT_ID",
                 BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
                 BPF_OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD", BPF_PROG_QUERY: "BPF_PROG_QUERY"}


def load_bpf_program(prog_type: int, program: bytes, name: str) -> int:
    """BPF_PROG_LOAD: the kernel's verifier checks `program` (struct
    bpf_insn array) and returns a file descriptor for it. On refusal the
    OSError carries the verifier's last words."""
    code = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(BPF_LICENSE)
    log = ctypes.create_string_buffer(65536)
    # union bpf_attr for BPF_PROG_LOAD, up to expected_attach_type: prog_type,
    # insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name[16], prog_ifindex, expected_attach_type
    attr = struct.pack("=IIQQIIQII16sII", prog_type, len(program) // 8, ctypes.addressof(code),
                       ctypes.addressof(license), 1, len(log), ctypes.addressof(log), 0, 0,
                       name.encode()[:15], 0, 0)
    try:
        fd, _ = _bpf(BPF_PROG_LOAD, attr, f"{len(program) // 8} instructions")
    except OSError as exc:
        # The log ends with statistics ("processed N insns ..."); the
        # reason for a refusal is the line before them.
        words = [line for line in log.value.decode(errors="replace").strip().splitlines()
                 if not line.startswith(("processed ", "verification time"))]
        if words:
            raise OSError(exc.errno, f"{exc.strerror} (the verifier said: {words[-1]})") from None
        raise
    os.set_inheritable(fd, False)
    return fd


def attach_cgroup_device_program(cgroup_path: str, program: bytes) -> None:
    """Load a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the cgroup
    v2 directory `cgroup_path` (BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI)."""
    prog_fd = load_bpf_program(BPF_PROG_TYPE_CGROUP_DEVICE, program, "minict_devices")
    try:
        cgroup_fd = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # union bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd,
            # attach_type, attach_flags, replace_bpf_fd
            _bpf(BPF_PROG_ATTACH, struct.pack("=IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI, 0), cgroup_path)
        finally:
            os.close(cgroup_fd)
    finally:
        os.close(prog_fd)   # the cgroup holds its own reference now


def cgroup_device_programs(cgroup_path) -> list[int]:
    """The ids of the device programs attached to a cgroup v2 directory
    itself (not those inherited from above): BPF_PROG_QUERY."""
    fd = os.open(str(cgroup_path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = ctypes.create_string_buffer(4 * 64)
        # target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt (in/out)
        attr = struct.pack("=IIIIQI4x", fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
        _, answer = _bpf(BPF_PROG_QUERY, attr, str(cgroup_path))
    finally:
        os.close(fd)
    count = struct.unpack_from("=I", answer, 24)[0]
    return list(struct.unpack_from(f"={count}I", ids.raw))


def bpf_program_ids() -> list[int]:
    """Every eBPF program loaded in this kernel, by id (BPF_PROG_GET_NEXT_ID)."""
    found, start = [], 0
    while True:
        try:
            _, answer = _bpf(BPF_PROG_GET_NEXT_ID, struct.pack("=III", start, 0, 0))
        except FileNotFoundError:
            return found
        start = struct.unpack_from("=I", answer, 4)[0]
        found.append(start)


def bpf_program_info(prog_id: int) -> tuple[int, bytes]:
    """(program type, its instructions as the kernel holds them) of a
    loaded program (BPF_PROG_GET_FD_BY_ID, then BPF_OBJ_GET_INFO_BY_FD)."""
    fd, _ = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("=III", prog_id, 0, 0), prog_id)
    try:
        def info(length: int, address: int) -> bytes:
            # struct bpf_prog_info up to xlated_prog_insns: type, id, tag[8],
            # jited_prog_len, xlated_prog_len, jited_prog_insns, xlated_prog_insns
            fields = struct.pack("=II8sIIQQ", 0, 0, b"", 0, length, 0, address)
            raw = ctypes.create_string_buffer(fields, len(fields))
            _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", fd, len(raw), ctypes.addressof(raw)),
                 prog_id)
            return raw.raw
        prog_type, _, _, _, length, _, _ = struct.unpack("=II8sIIQQ", info(0, 0))
        code = ctypes.create_string_buffer(length)
        info(length, ctypes.addressof(code))   # (a buffer of exactly `length`: no NUL added)
        return prog_type, code.raw
    finally:
        os.close(fd)
