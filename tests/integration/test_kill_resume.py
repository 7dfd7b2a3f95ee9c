"""A run killed with SIGKILL at any point resumes to exactly what an uninterrupted run stores.

``neuroscribe run`` runs as a subprocess on a tiny model, with an ``openai/...`` explainer and
simulator answered by a real HTTP server on 127.0.0.1 (plus the baselines). One warehouse sees a
chain of runs, each killed at another point, then one run to the end:

1. during collection, after the forward pass has checkpointed (``collect:batch#250``; with
   ``NEUROSCRIBE_CHECKPOINT_SECONDS=0`` the checkpoint is written every 200 batches),
2. during explain: the server holds the third explain request until the test kills the run,
3. during simulate: the same with the twentieth simulate request,
4. inside the transaction that writes the simulations (``write:simulations``),
5. the last run finishes.

Every table's content (run ids, timestamps, latencies and cache hits left out) must then equal
that of one uninterrupted run in another warehouse, with no duplicates, and the LLM calls that
finished before a kill must never reach the server again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import ChatServer  # noqa: E402
from collect_fixtures import build_tiny_model, random_documents, write_txt  # noqa: E402

from neuroscribe.warehouse.runs import abandoned_run_ids, adoptions  # noqa: E402

pytestmark = pytest.mark.slow

LLM = "openai/scripted"
FLUSH_WAIT_S = 3.0
"""How long a held request waits before the kill: three times the ledger's flush interval
(``flows.pipeline.LEDGER_FLUSH_SECONDS``), so every call answered before it is in the warehouse."""

CONFIG = """
[subject]
model = "{model}"
[corpus]
source = "{corpus}"
[collect]
site = "layers.1.mlp"
units = 4
window_tokens = 8
max_windows = 300
batch_size = 1
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
[explain]
explainers = ["{llm}", "baseline/ngram"]
samples = 2
[simulate]
simulators = ["{llm}", "baseline/lexical"]
[score]
bootstrap = 20
fuzz_windows = 2
[annotators."{llm}"]
simulate_format = "dense"
concurrency = 2
max_retries = 0
"""


def _last_user(body: dict) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def classify(body: dict) -> str:
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if body.get("max_tokens") == 1 and _last_user(body) == "Say OK.":
        return "preflight"
    if system.startswith("You check a description"):
        return "fuzz"
    if "response_format" in body:
        return "simulate"
    return "explain"


def answer(body: dict) -> str | list[str]:
    """Deterministic answers: the same request always gets the same text."""
    kind, user = classify(body), _last_user(body)
    if kind == "preflight":
        return "OK"
    if kind == "explain":
        marked = re.findall(r"<<(.+?)>>", user) or ["nothing"]
        word = marked[0].strip()
        return [f'the word "{word}"', f'text around "{word}"'][: body.get("n", 1)]
    detector = user.split("\n", 1)[0].lower()
    if kind == "fuzz":
        marked = re.findall(r"<<(.+?)>>", user)
        verdict = "yes" if any(m.strip().lower() in detector for m in marked) else "no"
        return json.dumps({"answer": verdict})
    tokens = json.loads(re.search(r"Tokens \(\d+\): (.*)$", user, re.S).group(1))
    acts = [10 if t.strip() and t.strip().lower() in detector else 0 for t in tokens]
    return json.dumps(
        {"activations": [{"token": t, "activation": a} for t, a in zip(tokens, acts, strict=True)]}
    )


class Gate:
    """Counts the requests of each kind and, when armed, holds every request of one kind from
    the ``at``-th on until released (the run is killed meanwhile)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self, kind: str | None = None, at: int = 0) -> None:
        with self.lock:
            self.kind, self.at = kind, at
            self.seen: Counter[str] = Counter()
            self.answered: Counter[str] = Counter()
            self.held = threading.Event()
            self.release = threading.Event()

    def __call__(self, body: dict):
        kind = classify(body)
        with self.lock:
            self.seen[kind] += 1
            hold = kind == self.kind and self.seen[kind] >= self.at
            held, release = self.held, self.release
        if hold:
            held.set()
            release.wait(600)
            return (503, {"error": {"message": "the client was killed"}})
        text = answer(body)
        with self.lock:
            self.answered[kind] += 1
        return text

    def llm_answered(self) -> int:
        return sum(n for k, n in self.answered.items() if k != "preflight")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    root = tmp_path_factory.mktemp("kill")
    model = build_tiny_model("llama", root / "model")
    corpus = write_txt(root / "corpus.txt", random_documents(300, seed=3))
    cfg = root / "run.toml"
    cfg.write_text(CONFIG.format(model=model, corpus=corpus, llm=LLM))
    gate = Gate()
    # One Prefect server for every run (each would otherwise start its own).
    with ChatServer(gate) as server, prefect_test_harness(server_startup_timeout=120):
        server.httpd.handle_error = lambda *a: None  # held requests answer a killed client
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "test-key",
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "OMP_NUM_THREADS": "1",
            "COLUMNS": "200",
            # Checkpoints every 200 batches, not only once a minute has passed.
            "NEUROSCRIBE_CHECKPOINT_SECONDS": "0",
        }
        env.pop("NEUROSCRIBE_OPENAI_BASE_URL", None)
        env.pop("NEUROSCRIBE_KILL_AT", None)
        yield root, cfg, gate, env
        gate.release.set()


def start(cfg: Path, warehouse: Path, env: dict, cache: Path, kill_at: str | None = None):
    env = {**env, "NEUROSCRIBE_CACHE": str(cache)}
    if kill_at:
        env["NEUROSCRIBE_KILL_AT"] = kill_at
    exe = Path(sys.executable).parent / "neuroscribe"
    return subprocess.Popen(
        [str(exe), "--warehouse", str(warehouse), "--config", str(cfg), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when_held(proc: subprocess.Popen, gate: Gate) -> None:
    """Wait until the server holds a request, give the ledger time to write what was answered,
    then SIGKILL the run."""
    while not gate.held.wait(0.5):
        assert proc.poll() is None, f"the run ended before the held request:\n{proc.stdout.read()}"
    time.sleep(FLUSH_WAIT_S)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    gate.release.set()


def content(warehouse: Path) -> dict[str, Counter]:
    """Every table's rows as a multiset, without run ids, timestamps, latencies and cache hits;
    ``llm_calls`` only the calls that were made (not answered from the cache). The runs'
    bookkeeping (``runs``, ``run_adoptions``) differs by design and is left out."""
    out: dict[str, Counter] = {}
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                " AND table_name NOT IN ('runs', 'run_adoptions', 'schema_migrations') ORDER BY 1"
            ).fetchall()
        ]
        for table in tables:
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                    " ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if r[0] not in ("run_id", "latency_ms", "cache_hit") and not r[0].endswith("_at")
            ]
            where = " WHERE NOT cache_hit" if table == "llm_calls" else ""
            rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}{where}").fetchall()
            out[table] = Counter(_hashable(r) for r in rows)
    return out


def _hashable(value):
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def runs(warehouse: Path) -> list[tuple[str, str, str]]:
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        return con.execute("SELECT run_id, status, stage FROM runs ORDER BY started_at").fetchall()


def real_calls(warehouse: Path, run_id: str) -> int:
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        return con.execute(
            "SELECT count(*) FROM llm_calls WHERE run_id = ? AND NOT cache_hit", [run_id]
        ).fetchall()[0][0]


def count(warehouse: Path, table: str) -> int:
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_killed_runs_resume_to_the_uninterrupted_result(setup):
    root, cfg, gate, env = setup

    # The reference: one run, never interrupted.
    gate.reset()
    reference = root / "reference.duckdb"
    r = start(cfg, reference, env, root / "cache-ref")
    log = r.communicate(timeout=600)[0]
    assert r.returncode == 0, log[-3000:]
    assert re.search(r"^[\d:]+ collect: started", log, re.M)  # its progress: a forward pass
    uninterrupted_calls = gate.llm_answered()
    [(ref_run, status, _)] = runs(reference)
    assert status == "finished" and real_calls(reference, ref_run) == uninterrupted_calls
    assert gate.answered["explain"] > 2 and gate.answered["simulate"] > 20

    wh, cache = root / "resumed.duckdb", root / "cache-chain"
    answered: list[int] = []  # LLM calls the server answered, per run of the chain

    # 1. Killed during collection, after the forward pass has checkpointed its state.
    gate.reset()
    p = start(cfg, wh, env, cache, kill_at="collect:batch#250")
    p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL
    assert [(s, st) for _, s, st in runs(wh)] == [("running", "collect")]
    assert count(wh, "units") == 0 and list((cache / "collect").glob("*.pt"))
    answered.append(gate.llm_answered())

    # 2. Killed during explain: the third explain request is held until the kill.
    gate.reset("explain", 3)
    p = start(cfg, wh, env, cache)
    kill_when_held(p, gate)
    answered.append(gate.llm_answered())
    assert gate.answered["explain"] == 2
    assert count(wh, "units") == 4 and count(wh, "explanations") == 0

    # 3. Killed during simulate: the twentieth simulate request is held until the kill.
    gate.reset("simulate", 20)
    p = start(cfg, wh, env, cache)
    kill_when_held(p, gate)
    answered.append(gate.llm_answered())
    assert gate.answered["explain"] == gate.seen["explain"] == 2  # only the two never answered
    assert gate.answered["simulate"] == 19
    assert count(wh, "explanations") > 0 and count(wh, "simulations") == 0

    # 4. Killed inside the transaction that writes the simulations.
    gate.reset()
    p = start(cfg, wh, env, cache, kill_at="write:simulations")
    p.communicate(timeout=600)
    assert p.returncode == -signal.SIGKILL
    answered.append(gate.llm_answered())
    assert count(wh, "simulations") == 0

    # 5. The last run finishes; everything it needed from before comes from the warehouse.
    gate.reset()
    p = start(cfg, wh, env, cache)
    log = p.communicate(timeout=600)[0]
    assert p.returncode == 0, log[-3000:]
    assert not re.search(r"^[\d:]+ collect: started", log, re.M)  # all stored: no forward pass
    answered.append(gate.llm_answered())

    chain = runs(wh)
    assert [s for _, s, _ in chain] == ["running"] * 4 + ["finished"]
    assert [st for _, _, st in chain[:4]] == ["collect", "explain", "simulate", "simulate"]
    # The killed runs' processes are gone: reads show them abandoned (the table still says
    # running), and the last run says whose rows it took over.
    with closing(duckdb.connect(str(wh), read_only=True)) as con:
        assert abandoned_run_ids(con) == {run_id for run_id, _, _ in chain[:4]}
        took = adoptions(con, chain[-1][0])
    assert took and all(a.from_status == "abandoned" and a.rows > 0 for a in took)
    for adoption in took:  # and the command says so
        assert adoption.sentence() in log
    # Every call the server answered was stored by the run that made it (none lost to a kill,
    # since each kill came after the ledger's flush), and no stored call was made again: the
    # chain made exactly the calls of the uninterrupted run.
    assert [real_calls(wh, run_id) for run_id, _, _ in chain] == answered
    assert sum(answered) == uninterrupted_calls
    assert answered[-1] < uninterrupted_calls

    got, want = content(wh), content(reference)
    assert set(got) == set(want)
    for table in want:
        assert got[table] == want[table], table
        assert all(n == 1 for n in got[table].values()), f"duplicate rows in {table}"
    assert sum(want["scores"].values()) > 0 and sum(want["agreements"].values()) > 0
