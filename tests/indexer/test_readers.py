import gzip
import json
import os
from itertools import islice
from pathlib import Path

import pytest

from bertsearch.errors import BertsearchError
from bertsearch.indexer.readers import estimate_document_count, iter_documents
from bertsearch.types import Document, SkippedFile
from tests.helpers import scifact_dir

SCIFACT_CORPUS = scifact_dir() / "corpus.jsonl.gz"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def read(*paths: Path, **kwargs) -> tuple[list[Document], list[SkippedFile]]:
    items = list(iter_documents(list(paths), **kwargs))
    return [i for i in items if isinstance(i, Document)], [i for i in items if isinstance(i, SkippedFile)]


def by_id(documents: list[Document]) -> dict[str, Document]:
    return {document.doc_id: document for document in documents}


def reasons(skipped: list[SkippedFile]) -> dict[str, str]:
    return {Path(item.path).name: item.reason for item in skipped}


def minimal_pdf(text: str, title: str | None = None) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with an /Info title if given."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode("latin-1"))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % len(objects) if title is not None else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def test_folder_is_read_recursively_in_sorted_order_with_relative_ids(tmp_path):
    write(tmp_path / "b.txt", "Second file.\n")
    write(tmp_path / "a.txt", "  First file.  \n\n")
    write(tmp_path / "sub" / "deep" / "notes.rst", "Notes\n=====\n\nSome reStructuredText.")
    write(tmp_path / "sub" / "c.md", "Intro line\n\n# The Title\n\nBody text.")

    documents, skipped = read(tmp_path)

    assert skipped == []
    assert [d.doc_id for d in documents] == ["a.txt", "b.txt", "sub/c.md", "sub/deep/notes.rst"]
    first = documents[0]
    assert first.text == "First file."
    assert first.title == ""
    assert first.source == str((tmp_path / "a.txt").absolute())
    markdown = by_id(documents)["sub/c.md"]
    assert markdown.title == "The Title"
    assert markdown.text == "Intro line\n\n# The Title\n\nBody text."
    assert by_id(documents)["sub/deep/notes.rst"].title == ""


def test_markdown_title_ignores_subheadings_and_code_blocks(tmp_path):
    write(tmp_path / "a.md", "## Not this\n\n```bash\n# a shell comment\n```\n\n# Real Title #\n\ntext")
    write(tmp_path / "b.md", "## Only a subheading\n\ntext")

    documents = by_id(read(tmp_path)[0])

    assert documents["a.md"].title == "Real Title"
    assert documents["b.md"].title == ""


def test_hidden_files_and_folders_are_never_read(tmp_path):
    write(tmp_path / "visible.txt", "Visible.")
    write(tmp_path / ".hidden.txt", "Hidden.")
    write(tmp_path / ".bertsearch" / "manifest.json", json.dumps({"id": "x", "text": "index data"}))
    write(tmp_path / ".bertsearch" / "passages.txt", "Index internals.")
    write(tmp_path / "sub" / ".git" / "config.txt", "Git internals.")

    documents, skipped = read(tmp_path)

    assert [d.doc_id for d in documents] == ["visible.txt"]
    assert skipped == []


def test_file_passed_directly_is_named_by_its_file_name(tmp_path):
    path = write(tmp_path / "deep" / "er" / "single.txt", "Just me.")

    documents, _ = read(path)

    assert [(d.doc_id, d.source) for d in documents] == [("single.txt", str(path.absolute()))]


def test_html_text_and_title(tmp_path):
    write(
        tmp_path / "page.html",
        """<!DOCTYPE html><html><head><title> The   Page </title><style>body { color: red }</style>
        <script>var secret = "do not index";</script></head>
        <body><h1>Heading</h1><p>First   paragraph
        wrapped in the source.</p><!-- a comment --><div>Second<br>line two</div>
        <ul><li>one</li><li>two</li></ul><script>alert("nope")</script></body></html>""",
    )
    write(tmp_path / "untitled.htm", "<html><body><h1>From <em>the</em> H1</h1><p>Body.</p></body></html>")

    documents = by_id(read(tmp_path)[0])

    page = documents["page.html"]
    assert page.title == "The Page"
    assert page.text == "Heading\n\nFirst paragraph wrapped in the source.\n\nSecond\nline two\n\none\n\ntwo"
    assert documents["untitled.htm"].title == "From the H1"
    assert documents["untitled.htm"].text == "From the H1\n\nBody."


def test_html_in_declared_legacy_encoding(tmp_path):
    markup = (
        '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head>'
        "<body><p>Cr\xe8me br\xfbl\xe9e</p></body></html>"
    )
    write(tmp_path / "legacy.html", markup.encode("cp1252"))

    (document,) = read(tmp_path)[0]

    assert (document.title, document.text) == ("Café", "Crème brûlée")


def test_jsonl_records_metadata_and_bad_lines(tmp_path):
    lines = [
        json.dumps({"_id": "d1", "title": "One", "text": "First text.", "year": 2020, "tags": ["x"], "url": "u"}),
        json.dumps({"id": 7, "text": "Numeric id."}),
        "",
        "{not json",
        json.dumps({"title": "No id", "text": "orphan"}),
        json.dumps({"_id": "d3", "title": "Title only", "text": ""}),
        json.dumps({"_id": "d4", "title": "", "text": "   "}),
        json.dumps(["a", "list"]),
    ]
    path = write(tmp_path / "corpus.jsonl", "\n".join(lines) + "\n")

    documents, skipped = read(path)

    assert [d.doc_id for d in documents] == ["d1", "7", "d3"]
    first = documents[0]
    assert (first.title, first.text, first.source) == ("One", "First text.", str(path.absolute()))
    assert first.metadata == {"year": 2020, "url": "u"}
    assert documents[2].text == ""
    assert [s.reason for s in skipped] == [
        "line 4: invalid JSON",
        "line 5: record has no id",
        "line 7: record has no text or title",
        "line 8: not a JSON object",
    ]
    assert {s.path for s in skipped} == {str(path.absolute())}


def test_beir_corpus_jsonl_gz_is_read_as_it_is(tmp_path):
    with gzip.open(SCIFACT_CORPUS, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in islice(handle, 25)]
    path = tmp_path / "corpus.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)

    documents, skipped = read(path)

    assert skipped == []
    assert [d.doc_id for d in documents] == [r["_id"] for r in records]
    assert [(d.title, d.text) for d in documents] == [(r["title"], r["text"].strip()) for r in records]
    assert all(d.metadata == {} for d in documents)  # BEIR's "metadata": {} is not a scalar


def test_record_files_are_streamed_not_size_limited(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for number in range(3000):
            handle.write(json.dumps({"_id": str(number), "text": f"Record number {number}. " * 4}) + "\n")
    truncated = write(tmp_path / "cut" / "broken.jsonl.gz", path.read_bytes()[: path.stat().st_size // 2])

    documents, skipped = read(path, max_file_bytes=1024)
    assert len(documents) == 3000 and skipped == []

    documents, skipped = read(truncated)
    assert len(documents) > 100  # the records before the damage are kept
    assert len(skipped) == 1 and skipped[0].reason.startswith("unreadable")


def test_json_object_and_list(tmp_path):
    write(tmp_path / "one.json", json.dumps({"_id": "solo", "title": "Solo", "text": "One object.", "lang": "en"}))
    write(
        tmp_path / "many.json",
        json.dumps([{"id": "m1", "text": "First."}, {"text": "No id."}, {"id": "m3", "title": "T", "text": None}]),
    )
    write(tmp_path / "broken.json", '{"id": "x",\n "text": }')
    write(tmp_path / "scalar.json", "42")

    documents, skipped = read(tmp_path)

    assert [d.doc_id for d in documents] == ["m1", "m3", "solo"]
    assert by_id(documents)["solo"].metadata == {"lang": "en"}
    assert by_id(documents)["m3"].text == ""
    assert sorted((Path(s.path).name, s.reason) for s in skipped) == [
        ("broken.json", "invalid JSON (Expecting value, line 2)"),
        ("many.json", "record 2: record has no id"),
        ("scalar.json", "not a JSON object or list of objects"),
    ]


def test_csv_records(tmp_path):
    write(
        tmp_path / "table.csv",
        'ID,Title,body,author,\n'
        'c1,First,"Body with, a comma\nand a newline.",Ann,\n'
        'c2,,Second body.,Bob,\n'
        ',No id,text,Cy,\n'
        'c4,Extra,fields,Dee,,surplus\n'
        'c5,Last,Fifth body.,Eve,\n',
    )
    write(tmp_path / "noid.csv", "name,text\nx,hello\n")

    documents, skipped = read(tmp_path)

    assert [d.doc_id for d in documents] == ["c1", "c2", "c5"]
    first = documents[0]
    assert (first.title, first.text) == ("First", "Body with, a comma\nand a newline.")
    assert first.metadata == {"author": "Ann"}
    assert sorted((Path(s.path).name, s.reason) for s in skipped) == [
        ("noid.csv", "no id column (need 'id' or '_id')"),
        ("table.csv", "line 5: record has no id"),  # c1's quoted body spans lines 2-3
        ("table.csv", "line 6: more fields than the header"),
    ]


def test_pdf_text_and_title(tmp_path):
    write(tmp_path / "titled.pdf", minimal_pdf("Hello from a PDF.", title="Metadata Title"))
    write(tmp_path / "untitled_report.pdf", minimal_pdf("No title in this one."))
    write(tmp_path / "damaged.pdf", b"%PDF-1.4\nnot really a pdf")

    documents, skipped = read(tmp_path)

    assert [(d.doc_id, d.title, d.text) for d in documents] == [
        ("titled.pdf", "Metadata Title", "Hello from a PDF."),
        ("untitled_report.pdf", "untitled_report", "No title in this one."),
    ]
    assert [Path(s.path).name for s in skipped] == ["damaged.pdf"]
    assert skipped[0].reason.startswith("unreadable PDF")


def test_legacy_encodings_and_bom_are_decoded(tmp_path):
    write(tmp_path / "cp1252.txt", "Un café, s’il vous plaît — très “bon”.".encode("cp1252"))
    write(tmp_path / "latin1.txt", "café".encode("latin-1"))
    write(tmp_path / "bom.md", "\ufeff# Titre\n\nDéjà vu.".encode("utf-8"))
    write(tmp_path / "utf16.txt", "Grüße aus Köln.".encode("utf-16"))
    write(tmp_path / "cp1252.jsonl", '{"_id": "j1", "text": "na\xefve caf\xe9"}\n'.encode("cp1252"))
    write(tmp_path / "bom.csv", "\ufeffid,text\nc1,crème\n".encode("utf-8"))

    documents = by_id(read(tmp_path)[0])

    assert documents["cp1252.txt"].text == "Un café, s’il vous plaît — très “bon”."
    assert documents["latin1.txt"].text == "café"
    assert (documents["bom.md"].title, documents["bom.md"].text) == ("Titre", "# Titre\n\nDéjà vu.")
    assert documents["utf16.txt"].text == "Grüße aus Köln."
    assert documents["j1"].text == "naïve café"
    assert documents["c1"].text == "crème"


def test_unusable_files_are_skipped_with_reasons(tmp_path):
    write(tmp_path / "binary.txt", b"PK\x03\x04\x00\x00binary\x00data")
    write(tmp_path / "empty.md", "")
    write(tmp_path / "blank.txt", " \n\t\n")
    write(tmp_path / "empty.html", "<html><body><script>x()</script></body></html>")
    write(tmp_path / "big.txt", "x" * 3000)
    write(tmp_path / "program.exe", b"MZ")
    write(tmp_path / "LICENSE", "Apache")
    write(tmp_path / "fine.txt", "Fine.")

    documents, skipped = read(tmp_path, max_file_bytes=2048)

    assert [d.doc_id for d in documents] == ["fine.txt"]
    assert reasons(skipped) == {
        "binary.txt": "binary",
        "empty.md": "empty",
        "blank.txt": "empty",
        "empty.html": "empty",
        "big.txt": "too large (2.9 KB > 2 KB)",
        "program.exe": "unsupported type .exe",
        "LICENSE": "unsupported type (no extension)",
    }


def test_size_limit_is_reported_in_megabytes(tmp_path):
    write(tmp_path / "big.txt", "x" * (3 * 1024 * 1024 + 10))

    _, skipped = read(tmp_path, max_file_bytes=1024 * 1024)

    assert reasons(skipped) == {"big.txt": "too large (3 MB > 1 MB)"}


def test_unreadable_file_is_skipped_and_the_run_goes_on(tmp_path):
    # A file whose read fails with an I/O error, whoever runs the test (root ignores chmod 0); named directly,
    # as a link out of a folder is not followed.
    (tmp_path / "broken.txt").symlink_to("/proc/self/mem")
    write(tmp_path / "fine.txt", "Readable.")
    documents, skipped = read(tmp_path / "broken.txt", tmp_path / "fine.txt")
    assert reasons(skipped) == {"broken.txt": "unreadable (Input/output error)"}
    assert [d.doc_id for d in documents] == ["fine.txt"]


def test_missing_path_raises_before_anything_is_read(tmp_path):
    write(tmp_path / "exists.txt", "Here.")
    stream = iter_documents([tmp_path, tmp_path / "nope"])

    with pytest.raises(BertsearchError, match="no such file or folder: .*nope"):
        next(stream)


def test_folder_links_are_not_followed(tmp_path):
    write(tmp_path / "real" / "doc.txt", "Real.")
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)

    documents, skipped = read(tmp_path)

    assert [d.doc_id for d in documents] == ["real/doc.txt"]
    assert reasons(skipped) == {"loop": "link to a folder, not followed"}


def test_links_loops_broken_and_outside_are_each_a_skip_with_its_reason(tmp_path):
    corpus, outside = tmp_path / "corpus", write(tmp_path / "private.txt", "Outside the indexed folder.")
    write(corpus / "ok.txt", "A good file.")
    write(corpus / "sub" / "target.md", "# Linked\n\nReached through a link.")
    (corpus / "a.txt").symlink_to("b.txt")
    (corpus / "b.txt").symlink_to("a.txt")
    (corpus / "broken.txt").symlink_to("missing.txt")
    (corpus / "out.txt").symlink_to(outside)
    (corpus / "inside.md").symlink_to(corpus / "sub" / "target.md")

    documents, skipped = read(corpus)

    assert [d.doc_id for d in documents] == ["inside.md", "ok.txt", "sub/target.md"]
    assert by_id(documents)["inside.md"].text == by_id(documents)["sub/target.md"].text
    assert by_id(documents)["inside.md"].source == str(corpus / "inside.md")
    assert reasons(skipped) == {
        "a.txt": "link loop (the link leads back to itself)",
        "b.txt": "link loop (the link leads back to itself)",
        "broken.txt": "broken link (to missing.txt)",
        "out.txt": f"link out of the indexed folder (to {outside}), not followed",
    }


def test_fifos_sockets_and_devices_are_skipped_without_being_opened(tmp_path):
    import socket
    import stat
    import threading

    write(tmp_path / "ok.txt", "A good file.")
    os.mkfifo(tmp_path / "pipe.txt")  # opening it would wait for a writer forever
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "server.sock"))
    os.mknod(tmp_path / "null.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (tmp_path / "link-to-pipe.txt").symlink_to(tmp_path / "pipe.txt")
    found: list = []
    reader = threading.Thread(target=lambda: found.append(read(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    listener.close()

    assert found, "reading the folder blocked"
    documents, skipped = found[0]
    assert [d.doc_id for d in documents] == ["ok.txt"]
    assert reasons(skipped) == {
        "pipe.txt": "not a regular file (a FIFO)",
        "server.sock": "not a regular file (a socket)",
        "null.txt": "not a regular file (a character device)",
        "link-to-pipe.txt": "link to a FIFO, not followed",
    }
    assert estimate_document_count([tmp_path]) == 1
    (fifo_read,) = [read(tmp_path / "pipe.txt")]  # named directly: still not opened
    assert [s.reason for s in fifo_read[1]] == ["not a regular file (a FIFO)"]


def test_file_names_that_are_not_utf8_keep_every_byte_in_ids_and_sources(tmp_path):
    from bertsearch.indexer.filenames import file_name_of, file_name_text

    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    latin = write(Path(os.fsdecode(bytes(folder) + b"/latin\xe9name.txt")), "A file whose name is Latin-1.")
    backslashes = write(folder / r"back\slash\x41.txt", "A name with backslashes.")
    write(Path(os.fsdecode(bytes(folder) + b"/\xff.bin")), "unsupported")

    documents, skipped = read(tmp_path)

    assert [d.doc_id for d in documents] == [r"caf\xe9/back\slash\\x41.txt", r"caf\xe9/latin\xe9name.txt"]
    for document, path in zip(documents, (backslashes, latin)):
        assert document.source == file_name_text(str(path))
        assert Path(file_name_of(document.source)) == path  # not a byte lost
        document.source.encode("utf-8")  # valid text for every store and output
    assert [s.path for s in skipped] == [rf"{tmp_path}/caf\xe9/\xff.bin"]


def test_escaped_file_names_round_trip_and_never_collide():
    from itertools import product

    from bertsearch.indexer.filenames import file_name_of, file_name_text

    alphabet = ["a", "\\", "x", "e", "9", "\udce9"]  # the escape's own characters, and a byte that is not UTF-8
    names = ["".join(parts) for length in range(6) for parts in product(alphabet, repeat=length)]
    texts = [file_name_text(name) for name in names]
    assert [file_name_of(text) for text in texts] == names
    assert len(set(texts)) == len(names)
    assert file_name_text("plain/names\\stay.txt") == "plain/names\\stay.txt"


def test_excluded_folders_are_not_read(tmp_path):
    write(tmp_path / "doc.txt", "Kept.")
    write(tmp_path / "index" / "manifest.json", '{"model_path": "/m"}')
    documents, skipped = read(tmp_path, exclude=[tmp_path / "index"])
    assert [d.doc_id for d in documents] == ["doc.txt"] and skipped == []


def test_estimate_document_count_counts_files_and_records(tmp_path):
    write(tmp_path / "a.txt", "One.")
    write(tmp_path / "b.md", "Two.")
    write(tmp_path / "skip.exe", "nope")
    write(tmp_path / "rows.csv", "id,text\n1,one\n2,two\n")
    write(tmp_path / "records.jsonl", "".join(json.dumps({"_id": str(i), "text": "x"}) + "\n" for i in range(5)))
    with gzip.open(tmp_path / "more.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps({"_id": f"g{i}", "text": "y"}) + "\n" for i in range(3)))
    estimate = estimate_document_count([tmp_path])
    assert estimate == 2 + 5 + 3 + 2
    assert estimate == sum(1 for item in iter_documents([tmp_path]) if isinstance(item, Document))


FRENCH = "Le café était très bon, et la crème brûlée aussi. Où est la bibliothèque ? Ça dépend de l’été. "


def scattered_bad_bytes(data: bytes, every: int) -> bytes:
    """`data` with one byte in `every` overwritten by a byte that is not valid UTF-8 there, deterministically."""
    damaged = bytearray(data)
    for position in range(every // 2, len(damaged), every):
        damaged[position] = 0x80 + position % 0x40 if damaged[position] < 0x80 else 0xFF
    return bytes(damaged)


def test_utf8_with_a_few_bad_bytes_is_decoded_as_utf8_with_replacement(tmp_path):
    one_stray = FRENCH.encode() + b"\xff" + FRENCH.encode()
    scattered = scattered_bad_bytes((FRENCH * 6).encode(), every=97)
    write(tmp_path / "stray.txt", one_stray)
    write(tmp_path / "short.md", "Ça marche très bien, merci à vous.".encode() + b"\xe9")
    write(tmp_path / "scattered.txt", scattered)
    write(tmp_path / "page.html", b"<html><body><p>" + one_stray + b"</p></body></html>")
    write(tmp_path / "records.jsonl", b'{"_id": "j1", "text": "' + one_stray + b'"}\n')
    write(tmp_path / "rows.csv", b'id,text\nc1,"' + one_stray + b'"\n')

    documents, skipped = read(tmp_path)

    assert skipped == []
    expected = f"{FRENCH}\ufffd{FRENCH}".strip()
    texts = by_id(documents)
    for doc_id in ("stray.txt", "page.html", "j1", "c1"):
        assert texts[doc_id].text == expected, doc_id
    assert texts["short.md"].text == "Ça marche très bien, merci à vous.\ufffd"
    decoded = texts["scattered.txt"].text
    assert decoded == scattered.decode("utf-8", errors="replace").strip()  # UTF-8, not a guessed code page
    assert "\ufffd" in decoded and "Le café était très bon" in decoded


def test_real_binaries_are_still_skipped(tmp_path):
    write(tmp_path / "compressed.txt", gzip.compress((FRENCH * 20).encode()))
    write(tmp_path / "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)))
    write(tmp_path / "records.jsonl", bytes(range(256)) * 4)

    documents, skipped = read(tmp_path)

    assert documents == []
    assert reasons(skipped) == {"compressed.txt": "binary", "image.md": "binary", "records.jsonl": "binary"}


def test_records_with_numbers_or_text_json_cannot_hold_are_skipped_with_the_field(tmp_path):
    lines = [
        '{"_id": "nan", "text": "t", "score": NaN}',
        '{"_id": "inf", "text": "t", "score": -Infinity}',
        '{"_id": "huge", "text": "t", "score": 1e400}',
        '{"_id": "surrogate", "text": "bad \\ud800 text"}',
        '{"_id": "key", "text": "t", "\\udc00": "x"}',
        '{"_id": "fine", "text": "t", "score": 1.5, "label": "NaN"}',
    ]
    path = write(tmp_path / "records.jsonl", "\n".join(lines) + "\n")
    write(tmp_path / "table.csv", "id,text,score\nc1,t,NaN\nc2,t,inf\n")
    write(tmp_path / "list.json", '[{"id": "j1", "text": "t", "weight": Infinity}]')

    documents, skipped = read(tmp_path)

    assert by_id(documents)["fine"].metadata == {"score": 1.5, "label": "NaN"}
    assert {d.doc_id: d.metadata for d in documents if d.doc_id.startswith("c")} == {  # CSV values are text
        "c1": {"score": "NaN"}, "c2": {"score": "inf"}}
    assert [s.reason for s in skipped if s.path == str(path)] == [
        "line 1: record field 'score' is nan, a number JSON cannot hold",
        "line 2: record field 'score' is -inf, a number JSON cannot hold",
        "line 3: record field 'score' is inf, a number JSON cannot hold",
        "line 4: record field 'text' is not valid Unicode (it holds a lone surrogate)",
        "line 5: record field '\\\\udc00' is not valid Unicode (it holds a lone surrogate)",
    ]
    assert reasons(skipped)["list.json"] == "record 1: record field 'weight' is inf, a number JSON cannot hold"
