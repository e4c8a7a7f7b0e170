"""The README's runnable example really runs (and its commands exist)."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_ela_example_runs(tmp_path):
    text = README.read_text()
    marker = text.index("<!-- tested: tests/test_readme.py runs this block -->")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "['hadamard_exp', 'modulated_dot', 'sub_sq_euclid', 'sum_sq_euclid']" in result.stdout


def test_readme_cli_modes_exist():
    from yolo_lat.cli import MODES

    modes = set(re.findall(r"^yolo-lat (\w+)", README.read_text(), re.M))
    assert modes and modes <= set(MODES)
