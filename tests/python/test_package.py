import re
import subprocess
import sys

import torch  # noqa: F401  (the package must work in a process that imported torch first)

import thought_anchors as ta
from conftest import REPO


def test_version_matches_version_header():
    header = (REPO / "include" / "anchors" / "version.h").read_text()
    assert re.search(r'#define ANCHORS_VERSION "([^"]+)"', header).group(1) == ta.__version__


def test_error_is_a_value_error_with_the_cpp_message(tmp_path):
    missing = tmp_path / "nope.json"
    try:
        ta.load_result(str(missing))
    except ta.Error as e:
        assert isinstance(e, ValueError)
        assert str(missing) in str(e)
    else:
        raise AssertionError("no error for a missing file")


def test_import_in_fresh_process_without_torch_first():
    # `import thought_anchors` must also work when torch was not imported before.
    out = subprocess.run([sys.executable, "-c", "import thought_anchors as ta; print(ta.__version__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ta.__version__


def test_registry_lists_resampling():
    names = [m.name for m in ta.methods()]
    assert "resampling" in names
    info = next(m for m in ta.methods() if m.name == "resampling")
    assert info.default_options["similarity_threshold"] == 0.8
    assert info.description


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "thought_anchors", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and ta.__version__ in out.stdout
