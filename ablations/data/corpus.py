"""Corpus sources: each gives documents as lists of sentences, the unit every input format is built from."""

import hashlib
import re
from pathlib import Path

from ablations.config import ConfigError
from ablations.hub import probe_hub
from ablations.data.synthetic import generate_documents

Document = list[str]

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before a capitalised word.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE_END.split(" ".join(text.split()))) if s]


def load(name: str, src) -> list[Document]:
    """The documents of one source named `name` in data.sources; empty documents are dropped."""
    loader = {"synthetic": _synthetic, "text_files": _text_files, "hub": _hub}[src.type]
    docs = [doc for doc in loader(name, src) if doc]
    if not docs:
        raise ConfigError(f"data.sources.{name}: no text found ({_where(src)})")
    return docs


def _where(src) -> str:
    return {"synthetic": "synthetic generator", "text_files": f"path {src.get('path')}",
            "hub": f"hub dataset {src.get('dataset')}"}[src.type]


def _synthetic(name, src):
    return [doc.texts() for doc in generate_documents(src.num_documents, seed=src.seed, num_topics=src.num_topics)]


def _text_files(name, src):
    texts = (f.read_text(encoding="utf-8-sig", errors="replace") for f in _files(name, src))
    return [split_sentences(doc) for text in texts for doc in _split_documents(text, src.doc_split, name)]


def _files(name: str, src) -> list[Path]:
    """The files a text_files source reads, in the order it reads them."""
    folder = Path(src.path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"data.sources.{name}.path={src.path}: no such folder (a folder of .txt files)")
    files = sorted(folder.rglob("*.txt")) + sorted(folder.rglob("*.raw"))
    if not files:
        raise ConfigError(f"data.sources.{name}.path={src.path}: holds no .txt (or .raw) files")
    return files


def files_sha(name: str, src) -> str:
    """A hash of the names and contents of a text_files source's files: a corpus edited in place is another one."""
    digest = hashlib.sha256()
    for path in _files(name, src):
        with path.open("rb") as f:
            digest.update(f"{path.relative_to(Path(src.path).expanduser())}\0".encode())
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


# WikiText's headings: " = Title = " opens an article, " = = Section = = " and deeper are inside one.
_WIKITEXT_HEADING = re.compile(r"^[ \t]*(=[ \t=]*)[^=\n]+[ \t=]*$", re.M)


def _split_documents(text: str, doc_split: str, name: str) -> list[str]:
    if doc_split == "file":
        return [text]
    if doc_split == "blank_line":
        return re.split(r"\n[ \t\r]*\n", text)
    if doc_split == "wikitext":
        return _wikitext_articles(text)
    raise ConfigError(f"data.sources.{name}.doc_split={doc_split}: allowed file, blank_line, wikitext")


def _wikitext_articles(text: str) -> list[str]:
    """One document per WikiText article (as BERT's documents are whole articles); heading lines are dropped."""
    articles, current = [], []
    for line in text.splitlines():
        heading = _WIKITEXT_HEADING.match(line)
        if heading and heading.group(1).strip() == "=":  # a top-level " = Title = "
            articles.append("\n".join(current))
            current = []
        elif not heading:
            current.append(line)
    return articles + ["\n".join(current)]


def _hub(name, src):
    hint = "offline, use data=synthetic (built in) or data=text_files data.sources.text_files.path=<folder>"
    probe_hub(src.dataset, f"data.sources.{name}.dataset", hint)
    import datasets
    try:
        rows = datasets.load_dataset(src.dataset, src.get("config"), split=src.split)[src.text_column]
    except Exception as err:
        raise ConfigError(f"data.sources.{name}: could not load {src.dataset} ({err}); {hint}") from None
    return [split_sentences(doc) for doc in hub_documents(rows, src.doc_split, name)]


def hub_documents(rows: list[str], doc_split: str, name: str) -> list[str]:
    """A row per document, or the rows read as the lines of one file (WikiText's rows are its file's lines, each
    with its newline) and split as text_files splits a file."""
    if doc_split == "row":
        return rows
    if doc_split in ("blank_line", "wikitext"):
        return _split_documents("".join(row if row.endswith("\n") else row + "\n" for row in rows), doc_split, name)
    raise ConfigError(f"data.sources.{name}.doc_split={doc_split}: allowed row, blank_line, wikitext")
