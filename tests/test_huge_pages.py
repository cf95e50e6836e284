"""The CPU buffer pool asks for transparent huge pages on the blocks of 32 MiB or more it maps.

Such a block is a mapping of its own (above glibc's largest mmap threshold); csrc/cpu/huge_pages.h
advises it (MADV_HUGEPAGE) before its first use, and leaves smaller blocks alone. The kernel
reports the advice as `THPeligible: 1` on the mapping in /proc/self/smaps when THP runs in
`madvise` mode, which is what these tests read.
"""

import re
from pathlib import Path

import pytest
import torch

import fusedrnn  # noqa: F401  (registers the ops)

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
SMAPS = Path("/proc/self/smaps")

pytestmark = pytest.mark.skipif(
    not (THP.exists() and SMAPS.exists() and "[madvise]" in THP.read_text()),
    reason="needs Linux with transparent huge pages in madvise mode",
)

MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ", re.MULTILINE)


def thp_eligible(address: int) -> bool:
    """Whether the mapping holding `address` may use huge pages (its THPeligible field)."""
    text = SMAPS.read_text()
    starts = list(MAPPING.finditer(text))
    for i, m in enumerate(starts):
        lo, hi = int(m.group(1), 16), int(m.group(2), 16)
        if lo <= address < hi:
            block = text[m.start(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            field = re.search(r"THPeligible:\s+(\d)", block)
            assert field, "no THPeligible field in /proc/self/smaps (kernel too old?)"
            return field.group(1) == "1"
    raise AssertionError(f"address {address:#x} in no mapping of /proc/self/smaps")


def lstm_workspace(steps: int, batch: int, hidden: int) -> torch.Tensor:
    torch.manual_seed(0)
    I, G = 4, 4 * hidden
    x = torch.randn(steps, batch, I)
    h0, c0 = torch.zeros(batch, hidden), torch.zeros(batch, hidden)
    w_ih, w_hh = torch.randn(G, I) * 0.1, torch.randn(G, hidden) * 0.01
    b = torch.zeros(G)
    y, _, _, ws = torch.ops.fusedrnn.lstm_layer(x, h0, c0, w_ih, w_hh, b, b, None, None, False,
                                                True, None, None, None)
    assert torch.isfinite(y).all()
    return ws


def test_a_workspace_of_32_mib_or_more_is_advised():
    ws = lstm_workspace(steps=33, batch=100, hidden=512)  # 3300 rows × 5·512 floats: 33.8 MB
    assert ws.nbytes >= 32 << 20
    assert thp_eligible(ws.data_ptr() + ws.nbytes // 2)


def test_a_smaller_workspace_is_left_alone():
    # 8.4 MB: a fresh block or an idle one of at most 10.5 MB from the buffer pool, never one of
    # the advised blocks of 32 MiB or more
    ws = lstm_workspace(steps=33, batch=100, hidden=128)
    assert ws.nbytes < 32 << 20
    assert not thp_eligible(ws.data_ptr() + ws.nbytes // 2)
