"""A worker's ``collect --handoff`` needs neither the warehouse nor Prefect: Prefect is never
imported (it is heavy, and a worker on another machine need not have a server)."""

from __future__ import annotations

import subprocess
import sys

from collect_fixtures import build_tiny_model, random_documents, write_txt

PROBE = """
import sys
from neuroscribe.cli import app
try:
    app(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print("prefect loaded:", any(m == "prefect" or m.startswith("prefect.") for m in sys.modules))
"""


def test_a_handoff_worker_never_imports_prefect(tmp_path):
    model = build_tiny_model("gpt2", tmp_path / "model")
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(40))
    r = subprocess.run(
        [
            sys.executable, "-c", PROBE, "collect", "--model", str(model), "--corpus",
            str(corpus), "--site", "layers.1.mlp", "--units", "2", "--window-tokens", "8",
            "--max-windows", "30", "--handoff", str(tmp_path / "handoff"),
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "prefect loaded: False" in r.stdout, r.stdout
    assert list((tmp_path / "handoff").iterdir())
