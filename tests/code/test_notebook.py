"""notebooks/error_analysis.ipynb runs against a real tracked run, so it cannot rot unnoticed."""

from __future__ import annotations

import nbformat
import pytest

from ..conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "error_analysis.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_on_a_tracked_run(tracked_run, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("TICKET_NLP_RUN_ID", tracked_run)  # the kernel inherits the test store's URI too
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(str(o.get("text") or o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"run {tracked_run}" in text
    assert "by product_category" in text and "traditional" in text and "accuracy_kept" in text
    assert "mismatch threshold in use" in text
    assert any(o.get("data", {}).get("image/png") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
