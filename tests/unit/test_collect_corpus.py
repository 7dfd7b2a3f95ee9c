"""Corpus readers (no model): txt, jsonl, parquet, directories, stdlib, and their errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import write_jsonl, write_parquet, write_txt  # noqa: E402

from neuroscribe.collect import CollectError  # noqa: E402
from neuroscribe.collect.corpus import (  # noqa: E402
    cached_docstrings,
    check_source,
    module_docstrings,
    open_corpus,
    stdlib_files,
)

DOCS = ["first document here", "second one\nwith two lines", "third"]


def read(source: Path | str, **kw) -> tuple[list[tuple[str, str]], int, str]:
    stream = open_corpus(str(source), **kw)
    docs = [(d.doc_id, d.text) for d in stream]
    return docs, stream.skipped, stream.corpus_id


def test_txt_documents_are_separated_by_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("first document here\n\n\n  \nsecond one\r\nwith two lines\n\nthird\n")
    docs, skipped, corpus_id = read(path)
    assert docs == [("c.txt#0", DOCS[0]), ("c.txt#1", DOCS[1]), ("c.txt#2", DOCS[2])]
    assert skipped == 0
    assert corpus_id.startswith(f"file:{path.resolve()}@")


def test_jsonl_and_parquet_read_the_text_field(tmp_path: Path) -> None:
    jl = write_jsonl(tmp_path / "c.jsonl", DOCS, field="body")
    pq = write_parquet(tmp_path / "c.parquet", DOCS, field="body")
    docs, _, _ = read(jl, text_field="body")
    assert docs == [(f"c.jsonl:{i + 1}", d) for i, d in enumerate(DOCS)]
    docs, _, _ = read(pq, text_field="body")
    assert docs == [(f"c.parquet:{i}", d) for i, d in enumerate(DOCS)]


def test_empty_and_non_utf8_documents_are_skipped_and_counted(tmp_path: Path) -> None:
    jl = tmp_path / "c.jsonl"
    lines = [
        json.dumps({"text": "good"}).encode(),
        b'{"text": "bad \xff byte"}',
        json.dumps({"text": "  "}).encode(),
        json.dumps({"text": None}).encode(),
        b"",
        json.dumps({"text": "also good"}).encode(),
    ]
    jl.write_bytes(b"\n".join(lines) + b"\n")
    docs, skipped, _ = read(jl)
    assert docs == [("c.jsonl:1", "good"), ("c.jsonl:6", "also good")]
    assert skipped == 3
    pq = write_parquet(tmp_path / "c.parquet", ["x", "", None, "y"])  # type: ignore[list-item]
    docs, skipped, _ = read(pq)
    assert [d for _, d in docs] == ["x", "y"] and skipped == 2


def test_directory_reads_supported_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_txt(tmp_path / "b.txt", ["b text"])
    write_jsonl(tmp_path / "sub" / "a.jsonl", ["a text"])
    write_parquet(tmp_path / "a.parquet", ["p text"])
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "notes.md").write_text("ignored")
    docs, skipped, corpus_id = read(tmp_path)
    assert docs == [("a.parquet:0", "p text"), ("b.txt#0", "b text"), ("sub/a.jsonl:1", "a text")]
    assert skipped == 1  # the latin-1 file, as one document
    # The id follows the content: changing a file changes it.
    write_txt(tmp_path / "b.txt", ["b text changed"])
    assert read(tmp_path)[2] != corpus_id


def test_max_documents_counts_usable_documents(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", ["a", "", "b", "c", "d"])
    docs, skipped, _ = read(path, max_documents=2)
    assert [d for _, d in docs] == ["a", "b"] and skipped == 1


def test_missing_and_unsupported_sources_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="corpus path '.*nope.txt' does not exist"):
        check_source(str(tmp_path / "nope.txt"))
    (tmp_path / "c.csv").write_text("a,b")
    with pytest.raises(CollectError, match="unsupported type"):
        check_source(str(tmp_path / "c.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError, match="holds no"):
        check_source(str(tmp_path / "empty"))
    write_parquet(tmp_path / "c.parquet", ["x"], field="content")
    with pytest.raises(CollectError, match="no column 'text'.*columns: content"):
        check_source(str(tmp_path / "c.parquet"))


def test_jsonl_without_the_field_or_not_json_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", ["a"], field="body")
    with pytest.raises(CollectError, match=r"c.jsonl:1 has no field 'text'"):
        read(path)
    path.write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(CollectError, match=r"c.jsonl:2 is not valid JSON"):
        read(path)


def test_hf_source_without_datasets_is_a_clear_error() -> None:
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(CollectError, match="needs the 'datasets' package"):
            check_source("hf:wikitext")
    with pytest.raises(CollectError, match="names no dataset"):
        check_source("hf:")


def test_stdlib_harvest_yields_docstring_documents() -> None:
    files = stdlib_files()
    names = [str(f) for f in files]
    assert names and not any(
        "/idlelib/" in n or "/test/" in n or "site-packages" in n for n in names
    )
    docs, _, corpus_id = read("stdlib", max_documents=5)
    assert corpus_id == f"stdlib:{sys.version.split()[0]}"
    assert len(docs) == 5
    assert all(text.strip() for _, text in docs)
    assert docs == read("stdlib", max_documents=5)[0]  # deterministic order
    assert [d for d, _ in docs] == sorted(d for d, _ in docs)


def test_module_docstrings_joins_docstrings_in_source_order(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        '"""Module doc."""\n\nclass A:\n    """Class doc."""\n\n    def f(self):\n'
        '        """Method doc.\n\n        More.\n        """\n\ndef g():\n    pass\n'
    )
    assert module_docstrings(path) == "Module doc.\n\nClass doc.\n\nMethod doc.\n\nMore."
    path.write_bytes(b"x = '\xff'\n")
    assert module_docstrings(path) is None


def test_cached_docstrings_harvest_once_and_again_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuroscribe.collect.corpus as corpus

    path, cache = tmp_path / "m.py", tmp_path / "cache"
    path.write_text('"""Module doc."""\n\ndef f():\n    """Function doc."""\n')
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"x = '\xff'\n")
    expected = "Module doc.\n\nFunction doc."
    assert cached_docstrings(path, cache) == module_docstrings(path) == expected
    assert cached_docstrings(bad, cache) is None
    assert len(list(cache.iterdir())) == 2  # one entry per file, no temporary file left

    harvested: list[Path] = []

    def counting(p: Path) -> str | None:
        harvested.append(p)
        return module_docstrings(p)

    monkeypatch.setattr(corpus, "module_docstrings", counting)
    assert cached_docstrings(path, cache) == "Module doc.\n\nFunction doc."
    assert cached_docstrings(bad, cache) is None
    assert harvested == []  # both read from the cache
    path.write_text('"""Changed, and longer, module doc."""\n')
    assert cached_docstrings(path, cache) == "Changed, and longer, module doc."
    assert harvested == [path]
    # A cache that cannot be written (here: a file where the folder should be) is passed over.
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    assert cached_docstrings(path, blocked) == "Changed, and longer, module doc."


def test_stdlib_corpus_reads_the_same_documents_from_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path))
    import sysconfig

    first = read("stdlib", max_documents=12)
    assert len(list((tmp_path / "stdlib-docstrings").iterdir())) >= 12
    root = Path(sysconfig.get_paths()["stdlib"])
    fresh = [(str(f.relative_to(root)), module_docstrings(f)) for f in stdlib_files()[:60]]
    assert first[0] == [(d, t) for d, t in fresh if t and t.strip()][:12]
    assert read("stdlib", max_documents=12) == first  # from the cache


def test_prefetched_yields_in_order_and_raises_the_readers_error() -> None:
    import threading

    from neuroscribe.collect.windows import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise CollectError("bad line 2")

    got = []
    with pytest.raises(CollectError, match="bad line 2"):
        for x in prefetched(failing()):
            got.append(x)
    assert got == [1]
    before = threading.active_count()
    stream = prefetched(iter(range(10_000)), depth=2)
    assert next(stream) == 0
    stream.close()  # the consumer stops early: the reader stops too
    assert threading.active_count() == before
