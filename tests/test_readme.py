"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine has 2 cores
    try:
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)
