"""Write /proc/cpuinfo as an arm64 Linux kernel would show the CPU that qemu-user emulates.

qemu-user passes the host's (x86) /proc/cpuinfo through, so a board's provenance would name the host's
CPU. Run under qemu (QEMU_CPU set), this reads the emulated CPU's feature bits from the auxiliary
vector and writes the kernel's arm64 format: `Features`, `CPU implementer`, `CPU part`, one block per
core, and a `Model` line saying it is emulated. Usage: edgeopt-board-cpuinfo CPU_MODEL OUT
"""

from __future__ import annotations

import os
import struct
import sys

# arch/arm64/kernel/cpuinfo.c: names of the AT_HWCAP bits, then of the AT_HWCAP2 bits
HWCAP = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
    "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg"
).split()
HWCAP2 = (
    "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
    "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres"
).split()
AT_HWCAP, AT_HWCAP2 = 16, 26
# MIDR part numbers of the Arm cores qemu models (implementer 0x41)
PARTS = {"cortex-a53": "0xd03", "cortex-a57": "0xd07", "cortex-a72": "0xd08", "cortex-a76": "0xd0b"}


def auxv() -> dict[int, int]:
    data = open("/proc/self/auxv", "rb").read()
    pairs = struct.iter_unpack("<QQ", data[: len(data) // 16 * 16])
    return {key: value for key, value in pairs}


def features(vector: dict[int, int]) -> list[str]:
    out = [name for bit, name in enumerate(HWCAP) if vector.get(AT_HWCAP, 0) >> bit & 1]
    return out + [name for bit, name in enumerate(HWCAP2) if vector.get(AT_HWCAP2, 0) >> bit & 1]


def cpuinfo(model: str) -> str:
    feats = " ".join(features(auxv()))
    part = PARTS.get(model, "0x000")
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 0.00\nFeatures\t: {feats}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n"
        for i in range(os.cpu_count() or 1)
    ]
    return "\n".join(blocks) + f"\nModel\t\t: edgeopt emulated arm64 board (qemu-user, {model})\n"


if __name__ == "__main__":
    with open(sys.argv[2], "w") as fh:
        fh.write(cpuinfo(sys.argv[1]))
