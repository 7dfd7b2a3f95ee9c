"""Cutting documents into fixed-length token windows, and framing them for the forward pass.

A window is ``window_tokens`` consecutive tokens of one document, cut without overlap from the
document's start; the short tail is dropped, so every window has exactly the same length and no
window spans two documents. Tokenization adds no special tokens. For the forward pass each window
is framed with the special tokens the tokenizer itself adds by default (BOS for Llama or Gemma,
[CLS]/[SEP] for BERT, nothing for GPT-2), so the model sees the input it was trained on, and the
activations at those framing positions are dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from neuroscribe.collect.corpus import Document
from neuroscribe.collect.errors import CollectError
from neuroscribe.records import Window

T = TypeVar("T")


@dataclass(frozen=True)
class RawWindow:
    """A window before its tokens are decoded: enough to rebuild the Window record."""

    index: int
    """Position in the corpus's window order (0, 1, ...)."""
    doc_id: str
    start: int
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Frame:
    """Special tokens around every window in the forward pass."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    def wrap(self, windows: list[RawWindow]) -> torch.Tensor:
        rows = [self.prefix + w.token_ids + self.suffix for w in windows]
        return torch.tensor(rows, dtype=torch.long)

    @property
    def extra(self) -> int:
        return len(self.prefix) + len(self.suffix)


def special_frame(tokenizer: Any) -> Frame:
    """The special tokens the tokenizer adds by default, found by encoding a probe both ways."""
    probe = "Hello world, this is a probe."
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    framed = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(framed) - len(plain) + 1):
        if framed[start : start + len(plain)] == plain:
            return Frame(tuple(framed[:start]), tuple(framed[start + len(plain) :]))
    return Frame((), ())  # the tokenizer rewrites text when framing: use no special tokens


def check_window_size(model: Any, window_tokens: int, frame: Frame) -> None:
    """CollectError when a framed window would not fit the model's positions."""
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and window_tokens + frame.extra > max_positions:
        raise CollectError(
            f"collect.window_tokens={window_tokens} is too large: the model takes at most "
            f"{max_positions} positions ({frame.extra} of them used by special tokens)"
        )


def tokenize(tokenizer: Any, text: str) -> list[int]:
    # Long documents exceed the tokenizer's model_max_length; that is expected here (they are cut
    # into windows), so silence the warning transformers logs about it.
    logger = logging.getLogger("transformers.tokenization_utils_base")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    finally:
        logger.setLevel(level)


def cut_windows(
    documents: Iterable[Document], tokenizer: Any, window_tokens: int, max_windows: int
) -> Iterator[RawWindow]:
    """Windows of exactly ``window_tokens`` tokens, in document order; ``max_windows`` at most."""
    index = 0
    for doc in documents:
        ids = tokenize(tokenizer, doc.text)
        for start in range(0, len(ids) - window_tokens + 1, window_tokens):
            if index >= max_windows:
                return
            yield RawWindow(index, doc.doc_id, start, tuple(ids[start : start + window_tokens]))
            index += 1
        if index >= max_windows:
            return


def batched(windows: Iterable[RawWindow], size: int) -> Iterator[list[RawWindow]]:
    batch: list[RawWindow] = []
    for w in windows:
        batch.append(w)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def prefetched(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer.

    Reading and tokenizing the corpus is Python work that holds the GIL, while the forward pass
    runs in torch kernels that release it: a reader thread overlaps the two. An exception in the
    reader is raised in the consumer; a consumer that stops early stops the reader.
    """
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
            put((True, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((True, e))

    reader = threading.Thread(target=read, name="corpus-reader", daemon=True)
    reader.start()
    try:
        while True:
            done, value = q.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        reader.join()


class TokenDecoder:
    """Each token id decoded on its own, memoised: what annotators are shown."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._memo: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        if token_id not in self._memo:
            self._memo[token_id] = self._tokenizer.decode([token_id])
        return self._memo[token_id]

    def window(self, corpus_id: str, raw: RawWindow) -> Window:
        return Window(
            window_id=Window.make_id(corpus_id, raw.doc_id, raw.start, raw.token_ids),
            corpus_id=corpus_id,
            doc_id=raw.doc_id,
            start=raw.start,
            token_ids=raw.token_ids,
            tokens=tuple(self(t) for t in raw.token_ids),
        )
