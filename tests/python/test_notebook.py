"""examples/quickstart.ipynb runs top to bottom on a fresh python3 kernel without an error, and shows what
it promises: the interactive report inline and matplotlib figures."""

from __future__ import annotations

import nbclient  # noqa: E402  (a missing dependency is an error, never a skip)
import nbformat  # noqa: E402

from conftest import REPO  # noqa: E402

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "the notebook is committed without outputs"
    # Runs in a scratch folder: whatever it writes (runs/, report.html) stays out of the checkout.
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("<iframe" in h and "srcdoc" in h for h in html), "result.show() displays the report inline"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2, "score and matrix plots"
    assert (tmp_path / "quickstart_report.html").is_file(), "the notebook saves the report"
