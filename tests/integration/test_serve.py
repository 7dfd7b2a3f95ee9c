"""``neuroscribe serve`` end to end: a real Prefect server on 127.0.0.1, the pipeline served on a
short schedule over a tiny model, an ``openai/...`` annotator answered by a real HTTP server. Two
scheduled runs must finish, each under its own run id, and the second must send the endpoint no
annotation request: every LLM call it needs is answered from the warehouse."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from annotator_fixtures import ChatServer
from collect_fixtures import build_tiny_model, random_documents, write_txt

BIN = Path(sys.executable).parent
MODEL = "openai/scripted-model"
INTERVAL_S = 15
CRON = os.environ.get("NEUROSCRIBE_TEST_SERVE_CRON")
"""Set (e.g. ``"* * * * *"``) to serve on a cron schedule instead of every ``INTERVAL_S`` s; the
test then takes a few minutes (cron's unit is the minute)."""
SCHEDULE = f'cron = "{CRON}"' if CRON else f"interval_seconds = {INTERVAL_S}"


def scripted(body: dict[str, Any]) -> str | list[str]:
    """A fixed explanation (the word "cat"), a JSON simulation (10 on tokens containing "cat"),
    and a yes/no judgement (yes when a marked token contains "cat")."""
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    for user in users:
        found = re.search(r"Tokens \(\d+\): (.*)$", user, re.S)
        if found:
            tokens = json.loads(found.group(1))
            acts = [{"token": t, "activation": 10 if "cat" in t else 0} for t in tokens]
            return json.dumps({"activations": acts})
    if "response_format" in body:
        return "yes" if re.search(r"<<[^>]*cat", users[-1]) else "no"
    return ['Explanation: the word "cat".'] * (body.get("n") or 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A background process in its own process group (with the flow runs it starts), its output
    going to ``log`` (a pipe nobody reads would fill and block it)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    """Interrupt the process group (as Ctrl-C would), then kill what lingers; the output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return log.read_text(errors="replace")


def write_config(tmp_path: Path) -> Path:
    model = build_tiny_model("llama", tmp_path / "model")
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(40))
    config = tmp_path / "neuroscribe.toml"
    config.write_text(
        f"""
[subject]
model = "{model}"
[corpus]
source = "{corpus}"
max_documents = 40
[collect]
site = "layers.1.mlp"
units = 2
window_tokens = 8
max_windows = 60
batch_size = 7
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
[explain]
explainers = ["{MODEL}", "baseline/ngram"]
samples = 2
[simulate]
simulators = ["{MODEL}", "baseline/lexical"]
[score]
bootstrap = 20
[schedule]
{SCHEDULE}
[annotators."{MODEL}"]
max_retries = 0
""",
        encoding="utf-8",
    )
    return config


@pytest.mark.slow
def test_served_pipeline_runs_twice_and_the_second_run_makes_no_llm_calls(tmp_path):
    config = write_config(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    env.pop("PREFECT_API_URL", None)
    arrivals: list[tuple[float, bool]] = []  # (time, is the 1-token endpoint check)
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> str | list[str]:
        check = body.get("max_tokens") == 1 and "response_format" not in body
        with lock:
            arrivals.append((time.time(), check))
        return "OK" if check else scripted(body)

    server_log, serve_log = tmp_path / "prefect-server.log", tmp_path / "serve.log"
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        server_log,
    )
    served: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                api(url, "/health")
                break
            except OSError:
                assert server.poll() is None, stop(server, server_log)
                assert time.monotonic() < deadline, "the Prefect server did not start"
                time.sleep(1)
        with ChatServer(responder) as chat:
            serve_env = {
                **env,
                "PREFECT_API_URL": url,
                "OPENAI_BASE_URL": chat.base_url,
                "OPENAI_API_KEY": "test-key",
            }
            served = start(
                [str(BIN / "neuroscribe"), "--warehouse", str(warehouse), "--config", str(config)]
                + ["serve"],
                serve_env,
                serve_log,
            )
            flow_filter = {"flows": {"name": {"any_": ["neuroscribe-scheduled"]}}}
            deadline = time.monotonic() + 420
            while True:
                assert served.poll() is None, stop(served, serve_log)
                runs = api(url, "/flow_runs/filter", {**flow_filter, "sort": "START_TIME_ASC"})
                states = [r["state_type"] for r in runs]
                assert not {"FAILED", "CRASHED"} & set(states), (states, stop(served, serve_log))
                done = [r for r in runs if r["state_type"] == "COMPLETED"]
                if len(done) >= 2:
                    break
                assert time.monotonic() < deadline, (states, stop(served, serve_log))
                time.sleep(2)
            output = stop(served, serve_log)
        artifacts = api(
            url, "/artifacts/filter", {"artifacts": {"key": {"any_": ["neuroscribe-summary"]}}}
        )
    finally:
        if served is not None:
            stop(served, serve_log)
        stop(server, server_log)

    first, second = done[0], done[1]
    starts = [datetime.fromisoformat(r["start_time"]).timestamp() for r in (first, second)]
    ends = [datetime.fromisoformat(r["end_time"]).timestamp() for r in (first, second)]
    assert "serving run" in output

    def requests_during(i: int) -> tuple[int, int]:
        inside = [check for t, check in arrivals if starts[i] <= t <= ends[i]]
        return sum(not c for c in inside), sum(inside)

    (calls1, checks1), (calls2, checks2) = requests_during(0), requests_during(1)
    print(
        f"scheduled runs {starts[1] - starts[0]:.1f} s apart; endpoint requests: run 1 "
        f"{calls1} + {checks1} check(s), run 2 {calls2} + {checks2} check(s); "
        f"{len(arrivals)} in all"
    )
    assert calls1 > 0 and calls2 == 0
    assert checks1 == 1 and checks2 == 1  # the endpoint check of each run's preflight

    with duckdb.connect(str(warehouse), read_only=True) as con:
        finished = con.execute(
            "SELECT run_id FROM runs WHERE status = 'finished' ORDER BY started_at"
        ).fetchall()
        assert len(finished) >= 2 and len({r[0] for r in finished}) == len(finished)
        calls = {
            run_id: con.execute(
                "SELECT count(*) FILTER (WHERE NOT cache_hit), count(*) FILTER (WHERE cache_hit)"
                " FROM llm_calls WHERE run_id = ? AND annotator = ?",
                [run_id, MODEL],
            ).fetchone()
            for (run_id,) in finished[:2]
        }
    (made1, _), (made2, cached2) = calls[finished[0][0]], calls[finished[1][0]]
    print(f"llm_calls rows: run 1 {made1} made; run 2 {made2} made, {cached2} from the cache")
    assert made1 == calls1  # every request of run 1 is a stored call
    assert made2 == 0 and cached2 > 0  # what run 2 asked for came from the cache
    summaries = [a["data"] for a in artifacts]
    assert len(summaries) >= 2
    assert any(finished[1][0] in s and f"| {MODEL} | baseline/lexical |" in s for s in summaries)


@pytest.mark.slow  # three runs of the command, each importing torch and Prefect
def test_serve_needs_a_prefect_server(tmp_path):
    """Checked after the input (a missing corpus is named first), before anything is served:
    no PREFECT_API_URL, or no server answering there, exits 2 with one message."""
    config = tmp_path / "c.toml"
    model = build_tiny_model("llama", tmp_path / "model")
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(20))
    body = (
        f'[subject]\nmodel = "{model}"\n[corpus]\nsource = "{{corpus}}"\n'
        '[collect]\nsite = "layers.1.mlp"\nunits = 2\nwindow_tokens = 8\nmax_windows = 20\n'
        '[explain]\nexplainers = ["baseline/ngram"]\n'
        '[simulate]\nsimulators = ["baseline/lexical"]\n'
        '[schedule]\ncron = "0 3 * * *"\n'
    )
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    nowhere = f"http://127.0.0.1:{free_port()}/api"
    cases = [
        (tmp_path / "gone.txt", env, "gone.txt"),
        (corpus, env, "PREFECT_API_URL is not set"),
        (corpus, {**env, "PREFECT_API_URL": nowhere}, f"no Prefect server answers at {nowhere}"),
    ]
    for source, case_env, needle in cases:
        config.write_text(body.format(corpus=source))
        r = subprocess.run(
            [str(BIN / "neuroscribe"), "--warehouse", str(tmp_path / "w.duckdb")]
            + ["--config", str(config), "serve"],
            env=case_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 2, (needle, r.stdout, r.stderr)
        assert needle in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr
