"""Reading documents from a corpus source, lazily and in a deterministic order.

Sources (``CorpusConfig.source``):

- ``stdlib``: the docstrings of the installed Python standard library, harvested with ``ast``
  (no module is imported). One document per module file, its docstrings (module, classes,
  functions, in source order) joined by blank lines; files in sorted path order; ``test``,
  ``tests``, ``idlelib`` and ``site-packages`` folders are skipped. Each file's harvest is kept
  in the cache directory (``stdlib-docstrings/``), keyed by the file's path, size and
  modification time and the Python version: later reads skip ``ast.parse``, which holds the GIL
  for a whole file while the forward pass waits on it.
- a ``.txt`` file: documents are separated by blank lines (one or more empty lines). Write one
  document per file in a directory, or use ``.jsonl``, for documents with blank lines inside.
- a ``.jsonl`` file: one JSON object per line, text in ``text_field``.
- a ``.parquet`` file: text in the column ``text_field`` (read in batches with pyarrow).
- a directory: every ``.txt``/``.jsonl``/``.parquet`` file below it, in sorted path order.
- ``hf:<name>`` or ``hf:<name>:<config>``: the ``train`` split of a Hugging Face dataset, streamed
  (needs the ``datasets`` package and the network).

Non-UTF-8 and empty documents are skipped and counted, never fatal; a missing or unreadable source
is a CollectError that names it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from neuroscribe.collect.errors import CollectError
from neuroscribe.ids import content_hash, file_hash
from neuroscribe.models import cache_dir

SUFFIXES = (".txt", ".jsonl", ".parquet")
STDLIB_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
HARVEST_VERSION = 1
"""Part of every cached harvest's key: raise it whenever ``module_docstrings`` changes what it
returns, and the files are harvested afresh."""

RawDoc = tuple[str, str | None]
"""(doc_id, text); text is None when the document could not be decoded."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


class DocumentStream:
    """Iterate a corpus's usable documents, counting the skipped ones as it goes."""

    def __init__(self, corpus_id: str, raw: Iterator[RawDoc], max_documents: int | None) -> None:
        self.corpus_id = corpus_id
        self._raw = raw
        self._max = max_documents
        self.n_documents = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Document]:
        for doc_id, text in self._raw:
            if self._max is not None and self.n_documents >= self._max:
                return
            if text is None or not text.strip():
                self.skipped += 1
                continue
            self.n_documents += 1
            yield Document(doc_id, text)


def open_corpus(
    source: str, text_field: str = "text", max_documents: int | None = None
) -> DocumentStream:
    """Open ``source`` (see the module docstring); CollectError when it cannot be read."""
    check_source(source, text_field)
    if source == "stdlib":
        return DocumentStream(stdlib_corpus_id(), _read_stdlib(), max_documents)
    if source.startswith("hf:"):
        return DocumentStream(source, _read_hf(source[3:], text_field), max_documents)
    path = Path(source).expanduser()
    files = _corpus_files(path)
    if path.is_dir():
        digest = content_hash([(str(f.relative_to(path)), file_hash(str(f))) for f in files])
    else:
        digest = file_hash(str(path))
    corpus_id = f"file:{path.resolve()}@{digest}"

    def raw() -> Iterator[RawDoc]:
        for f in files:
            name = str(f.relative_to(path)) if path.is_dir() else f.name
            yield from _read_file(f, name, text_field)

    return DocumentStream(corpus_id, raw(), max_documents)


def check_source(source: str, text_field: str = "text") -> None:
    """Cheap checks that a source exists and is readable, without reading its documents."""
    if source == "stdlib":
        return
    if source.startswith("hf:"):
        if not source[3:].strip():
            raise CollectError("corpus 'hf:' names no dataset; write hf:<dataset name>")
        if importlib.util.find_spec("datasets") is None:
            raise CollectError(
                f"corpus '{source}' needs the 'datasets' package (pip install datasets)"
            )
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise CollectError(f"corpus path '{source}' does not exist")
    files = _corpus_files(path)
    if not files:
        raise CollectError(f"corpus directory '{source}' holds no {'/'.join(SUFFIXES)} files")
    for f in files:
        if not os.access(f, os.R_OK):
            raise CollectError(f"corpus file '{f}' is not readable")
        if f.suffix == ".parquet":
            _check_parquet_column(f, text_field)


def _corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise CollectError(
                f"corpus file '{path}' has an unsupported type; use {', '.join(SUFFIXES)}"
            )
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )


def _read_file(path: Path, name: str, text_field: str) -> Iterator[RawDoc]:
    if path.suffix == ".txt":
        yield from _read_txt(path, name)
    elif path.suffix == ".jsonl":
        yield from _read_jsonl(path, name, text_field)
    else:
        yield from _read_parquet(path, name, text_field)


def _read_txt(path: Path, name: str) -> Iterator[RawDoc]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        yield name, None  # the whole file counts as one skipped document
        return
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for i, paragraph in enumerate(p for p in _BLANK_LINES.split(text) if p.strip()):
        yield f"{name}#{i}", paragraph.strip()


def _read_jsonl(path: Path, name: str, text_field: str) -> Iterator[RawDoc]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            doc_id = f"{name}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield doc_id, None
                continue
            if not line.strip():
                continue  # blank lines are layout, not documents
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise CollectError(f"{path}:{lineno} is not valid JSON ({e.msg})") from e
            if not isinstance(row, dict) or text_field not in row:
                raise CollectError(
                    f"{path}:{lineno} has no field '{text_field}' (corpus.text_field)"
                )
            text = row[text_field]
            yield doc_id, text if isinstance(text, str) else None


def _check_parquet_column(path: Path, text_field: str) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise CollectError(f"corpus file '{path}' is not a readable Parquet file: {e}") from e
    if text_field not in names:
        raise CollectError(
            f"corpus file '{path}' has no column '{text_field}' (corpus.text_field); "
            f"columns: {', '.join(names)}"
        )


def _read_parquet(path: Path, name: str, text_field: str) -> Iterator[RawDoc]:
    import pyarrow.parquet as pq

    _check_parquet_column(path, text_field)
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=[text_field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    value = None
            yield f"{name}:{row}", value if isinstance(value, str) else None
            row += 1


def stdlib_corpus_id() -> str:
    return f"stdlib:{sys.version.split()[0]}"


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files in sorted order, test and IDLE folders excluded."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in STDLIB_SKIP_DIRS)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return sorted(files, key=lambda p: str(p.relative_to(root)))


def _read_stdlib() -> Iterator[RawDoc]:
    root = Path(sysconfig.get_paths()["stdlib"])
    cache = cache_dir() / "stdlib-docstrings"
    for path in stdlib_files():
        yield str(path.relative_to(root)), cached_docstrings(path, cache)


def cached_docstrings(path: Path, cache: Path) -> str | None:
    """``module_docstrings(path)``, kept under ``cache`` by the file's path, size and
    modification time, the Python version and ``HARVEST_VERSION``: a changed file is harvested
    again. A cache that cannot be read or written is passed over (the file is harvested)."""
    stat = path.stat()
    key = content_hash(
        sys.version, str(path.resolve()), stat.st_size, stat.st_mtime_ns, HARVEST_VERSION
    )
    entry = cache / key
    try:
        kept = entry.read_bytes()
    except OSError:
        kept = b""
    if kept[:1] == b"-":
        return None  # harvested before: not readable as UTF-8 Python
    if kept[:1] == b"+":
        return kept[1:].decode("utf-8")
    docs = module_docstrings(path)
    data = b"-" if docs is None else b"+" + docs.encode("utf-8")
    tmp = entry.with_name(f"{key}.tmp{os.getpid()}")
    try:  # written whole, then renamed: a reader never sees half an entry
        cache.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, entry)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return docs


def module_docstrings(path: Path) -> str | None:
    """A module file's docstrings in source order, joined by blank lines; None if unreadable."""
    try:
        tree = ast.parse(path.read_bytes().decode("utf-8"), filename=str(path))
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return None
    docs: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                docs.append(doc)
        # Definitions are statements, and only statements (or the except and case clauses
        # that hold them) contain statements: expressions are never walked.
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                visit(child)

    visit(tree)
    return "\n\n".join(docs)


def _read_hf(spec: str, text_field: str) -> Iterator[RawDoc]:
    name, _, config = spec.partition(":")
    try:
        import datasets
    except ImportError as e:
        raise CollectError(f"corpus 'hf:{spec}' needs the 'datasets' package") from e
    try:
        stream = datasets.load_dataset(name, config or None, split="train", streaming=True)
        for i, row in enumerate(stream):
            text = row.get(text_field) if isinstance(row, dict) else None
            yield str(i), text if isinstance(text, str) else None
    except CollectError:
        raise
    except Exception as e:  # offline, unknown dataset, missing field: all "cannot read it"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CollectError(f"could not read Hugging Face dataset '{name}': {first}") from e
