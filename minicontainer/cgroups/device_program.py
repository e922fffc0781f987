"""The cgroup v2 device filter: device rules assembled into an eBPF program.

cgroup v2 has no devices.allow file. Instead, a program of type
BPF_PROG_TYPE_CGROUP_DEVICE is attached to the cgroup, and the kernel runs
it at every open() and mknod() of a device node by a process in that
cgroup. It gets a pointer (register r1) to

    struct bpf_cgroup_dev_ctx {      (include/uapi/linux/bpf.h)
        __u32 access_type;           (access << 16) | type
        __u32 major;
        __u32 minor;
    };

where type is BPF_DEVCG_DEV_BLOCK (1) or BPF_DEVCG_DEV_CHAR (2) and
access is a mask of BPF_DEVCG_ACC_MKNOD (1), _READ (2), _WRITE (4); it
answers in r0: 1 allows the access, 0 refuses it (the caller gets EPERM).

The program has the shape runc's devicefilter gives it:

    r2 = type   r3 = access   r4 = major   r5 = minor      (the prologue)
    for each rule, a block that skips to the next block on any mismatch:
        if r2 != TYPE goto next            (left out for type "a")
        r1 = r3; r1 &= ALLOWED             (left out when every access is allowed)
        if r1 != r3 goto next              (asked for something not allowed)
        if r4 != MAJOR goto next           (left out for "*")
        if r5 != MINOR goto next           (left out for "*")
        r0 = 1; exit                       allow
    r0 = 0; exit                           nothing matched: deny

Python has no eBPF assembler in its standard library, and the libraries
that assemble eBPF (bcc, via clang and LLVM) are far heavier than the
six instructions used here, so this module writes the 8-byte instructions
itself; the kernel's verifier checks every program before it is accepted.
Each instruction is `struct bpf_insn` (include/uapi/linux/bpf.h):
opcode (8 bits), dst and src registers (4 bits each), a signed 16-bit
offset (for jumps: instructions to skip), a signed 32-bit immediate.
"""

import struct
import sys

# Opcodes: instruction class | operation | source (include/uapi/linux/bpf_common.h, bpf.h).
LOAD_U32 = 0x61      # BPF_LDX | BPF_MEM | BPF_W:   dst = *(u32 *)(src + off)
AND_IMM = 0x54       # BPF_ALU | BPF_AND | BPF_K:   dst &= imm          (32-bit)
SHIFT_RIGHT = 0x74   # BPF_ALU | BPF_RSH | BPF_K:   dst >>= imm         (32-bit)
MOVE_REG = 0xbc      # BPF_ALU | BPF_MOV | BPF_X:   dst = src           (32-bit)
MOVE_IMM = 0xb4      # BPF_ALU | BPF_MOV | BPF_K:   dst = imm           (32-bit)
JUMP_NE_IMM = 0x55   # BPF_JMP | BPF_JNE | BPF_K:   if dst != imm: skip off instructions
JUMP_NE_REG = 0x5d   # BPF_JMP | BPF_JNE | BPF_X:   if dst != src: skip off instructions
EXIT = 0x95          # BPF_JMP | BPF_EXIT:          return r0

# The kernel's numbers for a rule's type and access letters.
TYPE_NUMBER = {"b": 1, "c": 2}                 # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS_BIT = {"m": 1, "r": 2, "w": 4}          # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
ALL_ACCESS = 1 | 2 | 4

# Registers: r0 the answer, r1 the context pointer on entry (then scratch).
R0, R1, R2, R3, R4, R5 = range(6)

INSTRUCTION_SIZE = 8


def instruction(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn, in this machine's byte order. (dst_reg and
    src_reg are C bit-fields: dst is the low nibble on little-endian
    machines, the high one on big-endian.)"""
    if sys.byteorder == "little":
        return struct.pack("<BBhi", opcode, (src << 4) | dst, off, imm)
    return struct.pack(">BBhi", opcode, (dst << 4) | src, off, imm)


PROLOGUE = b"".join([
    instruction(LOAD_U32, R2, R1, 0),       # r2 = ctx->access_type
    instruction(AND_IMM, R2, imm=0xFFFF),   # r2 = the type (low 16 bits)
    instruction(LOAD_U32, R3, R1, 0),       # r3 = ctx->access_type
    instruction(SHIFT_RIGHT, R3, imm=16),   # r3 = the access asked for (high 16 bits)
    instruction(LOAD_U32, R4, R1, 4),       # r4 = ctx->major
    instruction(LOAD_U32, R5, R1, 8),       # r5 = ctx->minor
])

ANSWER_ALLOW = instruction(MOVE_IMM, R0, imm=1) + instruction(EXIT)
ANSWER_DENY = instruction(MOVE_IMM, R0, imm=0) + instruction(EXIT)


def _rule_block(rule) -> bytes:
    """The instructions for one allow rule (see the module docstring)."""
    checks = []   # (opcode, dst, src, imm) of each "skip this rule unless" jump, with its setup
    if rule.type != "a":
        checks.append([(JUMP_NE_IMM, R2, 0, TYPE_NUMBER[rule.type])])
    allowed = sum(ACCESS_BIT[letter] for letter in rule.access)
    if allowed != ALL_ACCESS:
        checks.append([(MOVE_REG, R1, R3, 0), (AND_IMM, R1, 0, allowed),
                       (JUMP_NE_REG, R1, R3, 0)])
    if rule.major is not None:
        checks.append([(JUMP_NE_IMM, R4, 0, rule.major)])
    if rule.minor is not None:
        checks.append([(JUMP_NE_IMM, R5, 0, rule.minor)])
    steps = [step for check in checks for step in check]
    # A jump's offset counts the instructions after it up to the end of
    # this block: the rest of the steps, then the two of ANSWER_ALLOW.
    out = []
    for position, (opcode, dst, src, imm) in enumerate(steps):
        is_jump = opcode in (JUMP_NE_IMM, JUMP_NE_REG)
        skip = len(steps) - position - 1 + 2 if is_jump else 0
        out.append(instruction(opcode, dst, src, skip, imm))
    return b"".join(out) + ANSWER_ALLOW


def assemble(rules) -> bytes:
    """The whole program for `rules` (cgroups.devices.DeviceRule), as the
    bytes BPF_PROG_LOAD takes."""
    program = [PROLOGUE]
    for rule in rules:
        program.append(_rule_block(rule))
        if rule.type == "a" and rule.major is None and rule.minor is None \
                and set(rule.access) == set("rwm"):
            # Allows everything: nothing after it could ever run, and the
            # verifier refuses a program with unreachable instructions.
            return b"".join(program)
    program.append(ANSWER_DENY)
    return b"".join(program)


def instruction_count(program: bytes) -> int:
    return len(program) // INSTRUCTION_SIZE
