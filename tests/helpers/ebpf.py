"""Run a cgroup device program the way the kernel would, for unit tests.

Only the instructions minicontainer.cgroups.device_program emits are
understood (anything else fails the test loudly), and the meaning of each
is taken from the kernel's documentation (Documentation/bpf/
standardization/instruction-set.rst), not from the assembler: loads of the
context's three u32 fields, 32-bit AND / right shift / move, 64-bit jumps
on "not equal", and exit. The VM tier checks the real kernel's verdicts.
"""

import struct
import sys

CONTEXT_FIELDS = {0: "access_type", 4: "major", 8: "minor"}
MASK32 = 0xFFFFFFFF


def decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    """(opcode, dst, src, off, imm) for each 8-byte instruction."""
    assert len(program) % 8 == 0, "a program is a whole number of 8-byte instructions"
    out = []
    for at in range(0, len(program), 8):
        if sys.byteorder == "little":
            opcode, regs, off, imm = struct.unpack_from("<BBhi", program, at)
            dst, src = regs & 0x0F, regs >> 4
        else:
            opcode, regs, off, imm = struct.unpack_from(">BBhi", program, at)
            dst, src = regs >> 4, regs & 0x0F
        out.append((opcode, dst, src, off, imm))
    return out


def run(program: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """The program's answer (1 allow, 0 deny) for an access of `kind` ("c"
    or "b") device major:minor, `access` letters from "rwm"."""
    type_number = {"b": 1, "c": 2}[kind]
    access_bits = sum({"m": 1, "r": 2, "w": 4}[letter] for letter in access)
    context = {"access_type": (access_bits << 16) | type_number, "major": major, "minor": minor}
    code = decode(program)
    regs = [0] * 11
    regs[1] = "ctx"          # r1 points at the context on entry
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 10_000, "the program loops"
        assert 0 <= pc < len(code), f"jumped outside the program (to {pc})"
        opcode, dst, src, off, imm = code[pc]
        pc += 1
        if opcode == 0x61:      # LDX MEM W: dst = *(u32 *)(src + off), only from the context
            assert regs[src] == "ctx" and off in CONTEXT_FIELDS, "a load not from the context"
            regs[dst] = context[CONTEXT_FIELDS[off]]
        elif opcode == 0x54:    # ALU AND K (32-bit)
            regs[dst] = (regs[dst] & imm) & MASK32
        elif opcode == 0x74:    # ALU RSH K (32-bit)
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif opcode == 0xbc:    # ALU MOV X (32-bit)
            regs[dst] = regs[src] & MASK32
        elif opcode == 0xb4:    # ALU MOV K (32-bit)
            regs[dst] = imm & MASK32
        elif opcode == 0x55:    # JMP JNE K
            if regs[dst] != imm:
                pc += off
        elif opcode == 0x5d:    # JMP JNE X
            if regs[dst] != regs[src]:
                pc += off
        elif opcode == 0x95:    # EXIT
            return regs[0]
        else:
            raise AssertionError(f"instruction {opcode:#04x} is not one the device filter uses")


def reachable(program: bytes) -> set[int]:
    """Indexes of the instructions some path reaches (the kernel's verifier
    refuses a program with any other)."""
    code = decode(program)
    seen, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in seen or not 0 <= pc < len(code):
            continue
        seen.add(pc)
        opcode, _, _, off, _ = code[pc]
        if opcode == 0x95:
            continue
        if opcode in (0x55, 0x5d):
            todo.append(pc + 1 + off)
        todo.append(pc + 1)
    return seen
