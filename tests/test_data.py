"""The data pipeline: nested data sizes counted in tokens, weighted mixing, held-out documents, one shared
tokenizer and evaluation set per corpus, caches that survive concurrent builders, and the real corpora."""

import multiprocessing
import os

import numpy as np
import pytest

from ablations.config import ConfigError
from ablations.data import corpus
from ablations.data.cache import cached
from ablations.data.pipeline import mix, prepare, subset
from conftest import SHARED_DATA, make_cfg


def docs(n, length=10, tag=0):
    return [[[tag * 1000 + d] * length] for d in range(n)]


def test_data_sizes_are_nested_document_prefixes_counted_in_tokens():
    corpus_docs = [[[1] * (5 + d % 7)] * 3 for d in range(200)]
    total = sum(len(s) for d in corpus_docs for s in d)
    small, large = subset(corpus_docs, 500), subset(corpus_docs, 2000)
    assert large[:len(small)] == small and len(small) < len(large)
    for size, part in ((500, small), (2000, large)):
        tokens = sum(len(s) for d in part for s in d)
        assert size <= tokens < size + 3 * 12  # whole documents: at most one document over
    half = subset(corpus_docs, 0.5)
    assert 0.5 * total <= sum(len(s) for d in half for s in d) < 0.5 * total + 36
    assert subset(corpus_docs, None) is corpus_docs
    with pytest.raises(ConfigError, match="data.size"):
        subset(corpus_docs, total + 1)


def test_mixing_keeps_each_sources_token_share_in_every_prefix_and_in_all():
    """data.size takes prefixes of the mix, all of it included: each must hold the weights' shares, or a data-size
    arm differs from another in its mix of sources too. The mix ends where a source runs out (wiki, 9000 tokens at
    weight 3); what the others hold past that (books: about 150 documents of 20 tokens) is left out, and counted."""
    mixed, left_out = mix({"books": docs(300, 20, tag=1), "wiki": docs(900, 10, tag=2)}, {"books": 1.0, "wiki": 3.0})
    for prefix in (40, 200, 600, len(mixed)):
        books = sum(20 for d in mixed[:prefix] if d[0][0] < 2000)
        wiki = sum(10 for d in mixed[:prefix] if d[0][0] >= 2000)
        assert abs(wiki / (books + wiki) - 0.75) < 0.05
    books = sum(20 for d in mixed if d[0][0] < 2000)
    assert books in (3000, 3020) and left_out == {"books": 6000 - books, "wiki": 0}  # to within one document


def test_prepared_data_shares_tokenizer_and_eval_set_across_arms(tmp_path):
    arms = [("objective=mlm",), ("objective=mlm_nsp", "masking=static"), ("input_format=doc_sentences",),
            ("data.size=0.5",), ("masking.mlm_probability=0.3", "masking.mask_replace_prob=0.5"),
            ("data.sources.synthetic.weight=2.0",)]  # a weight orders the documents: the text is the same
    prepared = [prepare(make_cfg(*arm, "data.sources.synthetic.num_documents=120"), tmp_path) for arm in arms]
    assert len({p.tokenizer.backend_tokenizer.to_str() for p in prepared}) == 1
    for p in prepared[1:]:
        assert (p.eval.inputs == prepared[0].eval.inputs).all() and (p.eval.labels == prepared[0].eval.labels).all()
    assert len(list((tmp_path / "cache" / "corpus").glob("*/DONE"))) == 1
    assert prepared[3].stats["train_tokens"] < prepared[0].stats["train_tokens"]
    assert prepared[4].train.masker.mlm_probability == 0.3  # the arm masks its own way; the held-out mask does not
    # Held-out mask: 15%, whatever the arm's masking settings.
    e = prepared[0].eval
    regular = e.instances.input_ids >= 5
    assert abs((e.labels != -100).sum() / regular.sum() - 0.15) < 0.02


def test_held_out_documents_are_not_trained_on(tmp_path):
    cfg = make_cfg("data.sources.synthetic.num_documents=100", "data.valid_fraction=0.1", "input_format=doc_sentences")
    p = prepare(cfg, tmp_path)
    train_rows = {tuple(r[r != p.tokenizer.pad_token_id]) for r in p.train.instances(0).input_ids}
    eval_rows = {tuple(r[r != p.tokenizer.pad_token_id]) for r in p.eval.instances.input_ids}
    assert not train_rows & eval_rows
    assert p.stats["train_documents"] == 90


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_the_pipeline_masks_at_the_configured_rate_and_shares(tmp_path, masking):
    cfg = make_cfg(f"masking={masking}", "masking.mlm_probability=0.2", "masking.mask_replace_prob=0.5",
                   "masking.random_replace_prob=0.3", "data.sources.synthetic.num_documents=120")
    data = prepare(cfg, tmp_path)
    mask_id, special = data.tokenizer.mask_token_id, 5
    counts = np.zeros(4)  # candidates, selected, replaced by the mask token, replaced by a random token
    for epoch in (0, 1):
        for index in range(data.train.size(epoch)):
            ids = data.train.instances(epoch).input_ids[index]
            inputs, labels = data.train.masked(epoch, index)
            selected = labels != -100
            counts += [(ids >= special).sum(), selected.sum(), (inputs[selected] == mask_id).sum(),
                       ((inputs[selected] != mask_id) & (inputs[selected] != ids[selected])).sum()]
    assert counts[1] / counts[0] == pytest.approx(0.2, abs=0.01)
    assert counts[2] / counts[1] == pytest.approx(0.5, abs=0.03)
    assert counts[3] / counts[1] == pytest.approx(0.3, abs=0.03)


def _build_slowly(out, tag):
    (out / "part").write_text(tag * 1000)
    (out / "whole").write_text(tag)


def _builder(root, tag):
    path = cached(root, "demo", {"k": 1}, lambda out: _build_slowly(out, tag))
    return (path / "part").read_text()[:1] == (path / "whole").read_text()


def test_cache_survives_concurrent_builders_and_rebuilds_a_killed_build(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert all(pool.starmap(_builder, [(tmp_path, tag) for tag in "abcd"]))
    folders = list((tmp_path / "demo").iterdir())
    assert len([f for f in folders if f.is_dir()]) == 1  # no stray temporary folders
    path = folders[0] if folders[0].is_dir() else folders[1]
    os.remove(path / "DONE")  # as if killed before it finished
    assert _builder(tmp_path, "e") and (path / "whole").read_text() == "e"


def test_text_files_reads_blank_line_documents_and_one_file_per_document(tmp_path):
    (tmp_path / "a.txt").write_text("First doc. It has two sentences.\n\nSecond doc here!\nStill second.\n")
    (tmp_path / "b.txt").write_text("Third doc? Yes.")
    src = make_cfg("data=text_files", f"data.sources.text_files.path={tmp_path}").data.sources.text_files
    assert corpus.load("text_files", src) == [["First doc.", "It has two sentences.", "Second doc here!",
                                               "Still second."], ["Third doc?", "Yes."]]
    src.doc_split = "blank_line"
    assert corpus.load("text_files", src) == [["First doc.", "It has two sentences."],
                                              ["Second doc here!", "Still second."], ["Third doc?", "Yes."]]


def test_wikitext_articles_are_documents_and_headings_are_dropped(tmp_path):
    (tmp_path / "wiki.raw").write_text(" = Alpha = \n\n Alpha is first . It leads .\n\n = = History = = \n\n"
                                       " It began . \n\n = Beta = \n\n Beta follows .\n")
    src = make_cfg("data=text_files", f"data.sources.text_files.path={tmp_path}",
                   "data.sources.text_files.doc_split=wikitext").data.sources.text_files
    assert corpus.load("text_files", src) == [["Alpha is first .", "It leads .", "It began ."], ["Beta follows ."]]


@pytest.mark.parametrize("problem,message", [("missing", "no such folder"), ("no_txt", "holds no .txt"),
                                             ("empty", "no text found")])
def test_text_files_bad_input(tmp_path, problem, message):
    folder = tmp_path / "corpus"
    if problem != "missing":
        folder.mkdir()
        (folder / ("a.txt" if problem == "empty" else "a.csv")).write_text("  \n\n ")
    src = make_cfg("data=text_files", f"data.sources.text_files.path={folder}").data.sources.text_files
    with pytest.raises(ConfigError, match=f"data.sources.text_files.*{message}"):
        corpus.load("text_files", src)


@pytest.mark.skipif(not (SHARED_DATA / "corpus").is_dir(), reason="shared corpus absent")
def test_text_files_reads_the_shared_books_and_wikitext():
    books = make_cfg("data=text_files", f"data.sources.text_files.path={SHARED_DATA / 'corpus/books'}")
    documents = corpus.load("text_files", books.data.sources.text_files)
    assert len(documents) == 42 and min(len(d) for d in documents) > 500
    wiki = make_cfg("data=text_files", f"data.sources.text_files.path={SHARED_DATA / 'corpus/wikitext-2-raw'}",
                    "data.sources.text_files.doc_split=blank_line")
    documents = corpus.load("text_files", wiki.data.sources.text_files)
    assert len(documents) > 1000 and any("Homarus gammarus" in s for d in documents for s in d)


WIKITEXT = (" = Alpha = \n \n Alpha is first . It leads .\n Alpha has a second line .\n \n = = History = = \n \n"
            " It began .\n \n = Beta = \n \n Beta follows .\n Beta ends .\n")


@pytest.mark.parametrize("doc_split, documents", [("blank_line", 6), ("wikitext", 2)])
def test_a_hub_dataset_splits_into_the_documents_its_file_does(tmp_path, doc_split, documents):
    """The Hub's WikiText rows are the raw file's lines, each with its newline, blank lines empty: read from the Hub
    or from the file, the same text must make the same documents (once each row became a document of its own)."""
    rows = [line if line.strip() else "" for line in WIKITEXT.splitlines(keepends=True)]
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "wiki.valid.raw").write_text(WIKITEXT)
    src = make_cfg("data=text_files", f"data.sources.text_files.path={tmp_path / 'wiki'}",
                   f"data.sources.text_files.doc_split={doc_split}").data.sources.text_files
    from_file = corpus.load("text_files", src)
    from_hub = [corpus.split_sentences(d) for d in corpus.hub_documents(rows, doc_split, "hub")]
    assert [d for d in from_hub if d] == from_file and len(from_file) == documents


def test_synthetic_nsp_pairs_carry_a_learnable_signal(tmp_path):
    """Is-next pairs share their document's cast and props; random pairs mostly do not. A one-feature
    rule (word overlap of the two segments above the median) already beats chance by a wide margin."""
    p = prepare(make_cfg("objective=mlm_nsp", "data.sources.synthetic.num_documents=300"), tmp_path)
    inst = p.train.instances(0)
    overlap = []
    for ids, types in zip(inst.input_ids, inst.token_type_ids):
        body = ids >= 5
        a, b = set(ids[body & (types == 0)].tolist()), set(ids[body & (types == 1)].tolist())
        overlap.append(len(a & b) / max(1, len(a | b)))
    overlap, is_next = np.array(overlap), inst.next_sentence_label == 0
    accuracy = ((overlap > np.median(overlap)) == is_next).mean()
    assert accuracy > 0.65, accuracy
