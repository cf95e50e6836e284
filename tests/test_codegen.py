"""Machine-code checks of the per-step GEMM kernel (csrc/cpu/small_gemm.h).

Its blocks keep up to 24 accumulator vectors in registers. GCC's register allocation is fragile
there: a harmless-looking reordering of the block's epilogue once made GCC keep every accumulator
on the stack, so each multiply-add read and wrote memory and LSTM/GRU inference at H = 512 took
1.8x as long, with every test still passing. This test reads the built extension's machine code
and fails if any block multiplies from the stack. It runs where the extension was built with
AVX-512 (the default -march=native build on such a CPU) and binutils is installed.
"""

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import fusedrnn

EXTENSION = next(Path(fusedrnn.__file__).parent.glob("_C*.so"), None)
BLOCK_SYMBOL = re.compile(r"small_gemm_detail5blockILi\d+ELi\d+E")
FMA_FROM_STACK = re.compile(r"vfmadd\w*\s+[^#]*\(%rsp\)")

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or EXTENSION is None
    or not (shutil.which("nm") and shutil.which("objdump")),
    reason="needs the x86-64 extension and binutils (nm, objdump)",
)


def block_symbols() -> list[str]:
    names = subprocess.run(["nm", str(EXTENSION)], capture_output=True, text=True, check=True)
    return sorted({line.split()[-1] for line in names.stdout.splitlines()
                   if BLOCK_SYMBOL.search(line)})


def disassemble(symbol: str) -> list[str]:
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}",
                          str(EXTENSION)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_small_gemm_blocks_multiply_from_registers():
    symbols = block_symbols()
    assert symbols, "no small_gemm block in the extension's symbol table"
    code = {symbol: disassemble(symbol) for symbol in symbols}
    if not any("zmm" in line for lines in code.values() for line in lines):
        pytest.skip("extension not built for AVX-512: the blocks' vectors are split")
    spilled = {symbol: [line.strip() for line in lines if FMA_FROM_STACK.search(line)]
               for symbol, lines in code.items()}
    spilled = {symbol: lines for symbol, lines in spilled.items() if lines}
    assert not spilled, (
        "small_gemm blocks take multiply-add operands from the stack (accumulators spilled): "
        + "; ".join(f"{s}: {len(lines)} such FMAs, e.g. {lines[0]}" for s, lines in spilled.items())
    )
