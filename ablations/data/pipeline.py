"""One cell's data, from corpus sources to masked datasets, cached in two stages:

corpus    (sources but their weights, held-out split, tokenizer): the tokenizer and token ids of every document;
          shared by every cell on the same corpus, whatever its mix, size, format or masking;
instances (+ the sources' weights, data.size, input_format, seq_len; dupe_factor for pair formats): the training
          sequences, one copy per dupe_factor for pair formats (BERT rebuilds its pairs per copy), and the held-out
          set.
Masks are drawn when fed, from (seed, copy or epoch, index): see ablations/data/masking.py.
Arrays are saved as .npy files and memory-mapped, never loaded whole into every process.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerFast

from ablations.config import ConfigError
from ablations.data import corpus, formats, tokenizer as tokenizers
from ablations.data.cache import cached
from ablations.data.masking import FixedMaskDataset, MaskedDataset, Masker

log = logging.getLogger(__name__)
EVAL_MASKING = {"mlm_probability": 0.15, "mask_replace_prob": 0.8, "random_replace_prob": 0.1}


@dataclass
class Prepared:
    tokenizer: PreTrainedTokenizerFast
    train: MaskedDataset
    eval: FixedMaskDataset
    stats: dict


def prepare(cfg: DictConfig, root: Path) -> Prepared:
    plain = OmegaConf.to_container(cfg, resolve=True)
    sources = plain["data"]["sources"]  # their weights order the documents, never change the text or tokenizer
    corpus_settings = {"sources": {n: {k: v for k, v in src.items() if k != "weight"} for n, src in sources.items()},
                       "valid_fraction": cfg.data.valid_fraction, "data_seed": cfg.data.seed,
                       "tokenizer": plain["tokenizer"]}
    corpus_dir = cached(root / "cache", "corpus", corpus_settings, lambda out: _build_corpus(cfg, out),
                        rebuild_damaged=False)  # a tokenizer trained again can differ: cells would not compare
    tok = PreTrainedTokenizerFast.from_pretrained(corpus_dir / "tokenizer")
    instance_settings = {"corpus": corpus_dir.name, "weights": {name: src["weight"] for name, src in sources.items()},
                         "size": cfg.data.size, "input_format": plain["input_format"],
                         "seq_len": cfg.seq_len, "copies": _copies(cfg)}
    instances_dir = cached(root / "cache", "instances", instance_settings,
                           lambda out: _build_instances(cfg, corpus_dir, tok, out))
    copies = [formats.Instances.load(instances_dir / "train" / str(k)) for k in range(_copies(cfg))]
    masker = _masker(plain["masking"], tok)
    stats = json.loads((instances_dir / "stats.json").read_text())
    dupe_factor = cfg.masking.dupe_factor if cfg.masking.name == "static" else None
    return Prepared(tok, MaskedDataset(copies, masker, cfg.seed, dupe_factor),
                    FixedMaskDataset(formats.Instances.load(instances_dir / "eval"), _masker(EVAL_MASKING, tok)),
                    stats)


def _copies(cfg) -> int:
    """Pair formats draw their pairs at random: one set per copy. Packed formats are the same every time."""
    return cfg.masking.dupe_factor if cfg.input_format.pairs else 1


def _masker(settings: dict, tok) -> Masker:
    return Masker(settings["mlm_probability"], settings["mask_replace_prob"], settings["random_replace_prob"],
                  mask_id=tok.mask_token_id, num_special=tokenizers.num_special(tok), vocab_size=len(tok))


def _build_corpus(cfg, out: Path) -> None:
    """Holds out valid_fraction of each source's documents, trains the tokenizer on the rest, encodes all."""
    splits = {}
    for name, src in cfg.data.sources.items():
        docs = corpus.load(name, src)
        if len(docs) < 2:
            raise ConfigError(f"data.sources.{name}: {len(docs)} document, need at least 2 (one is held out)")
        order = np.random.default_rng(cfg.data.seed).permutation(len(docs))
        held_out = max(1, round(cfg.data.valid_fraction * len(docs)))
        splits[name] = {"valid": [docs[i] for i in order[:held_out]], "train": [docs[i] for i in order[held_out:]]}
    log.info("training the %s tokenizer on %d documents", cfg.tokenizer.name,
             sum(len(s["train"]) for s in splits.values()))
    texts = (sentence for s in splits.values() for doc in s["train"] for sentence in doc)
    tok = tokenizers.train(cfg.tokenizer.name, texts, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    tok.save_pretrained(out / "tokenizer")
    for name, split in splits.items():
        for part, docs in split.items():
            _save_docs(out / f"{name}.{part}.npz", _encode(tok, docs))


def _encode(tok, docs: list[list[str]]) -> list[list[list[int]]]:
    flat = tok([sentence for doc in docs for sentence in doc], add_special_tokens=False)["input_ids"]
    encoded, start = [], 0
    for doc in docs:
        encoded.append(flat[start:start + len(doc)])
        start += len(doc)
    return encoded


def _save_docs(path: Path, docs) -> None:
    sentences = [s for doc in docs for s in doc]
    np.savez(path, ids=np.fromiter((t for s in sentences for t in s), dtype=np.int32),
             sentence_lengths=np.array([len(s) for s in sentences], dtype=np.int64),
             doc_sentences=np.array([len(doc) for doc in docs], dtype=np.int64))


def _load_docs(path: Path) -> list[list[list[int]]]:
    with np.load(path) as f:
        ids, sentence_ends, doc_ends = f["ids"].tolist(), np.cumsum(f["sentence_lengths"]), np.cumsum(f["doc_sentences"])
    sentences = [ids[end - n:end] for end, n in zip(sentence_ends.tolist(), np.diff(sentence_ends, prepend=0).tolist())]
    return [sentences[end - n:end] for end, n in zip(doc_ends.tolist(), np.diff(doc_ends, prepend=0).tolist())]


def _build_instances(cfg, corpus_dir: Path, tok, out: Path) -> None:
    names = list(cfg.data.sources)
    train, left_out = mix({n: _load_docs(corpus_dir / f"{n}.train.npz") for n in names},
                          {n: cfg.data.sources[n].weight for n in names})
    if any(left_out.values()):
        log.warning("data: %s training tokens left out to keep the sources' weights (%s) once one runs out; weights "
                    "in proportion to the sources' sizes use them all", left_out,
                    ", ".join(f"{n} {cfg.data.sources[n].weight}" for n in names))
    train = subset(train, cfg.data.size)
    valid = [doc for n in names for doc in _load_docs(corpus_dir / f"{n}.valid.npz")]
    ids = dict(cls_id=tok.cls_token_id, sep_id=tok.sep_token_id, pad_id=tok.pad_token_id)
    copies = [formats.build(cfg.input_format, train, cfg.seq_len, rng=np.random.default_rng((cfg.data.seed, k)), **ids)
              for k in range(_copies(cfg))]
    # Held-out sequences ignore the arm's input format: one document's text per sequence, for every cell.
    held_out = formats.to_arrays(formats.packed(valid, cfg.seq_len - 2, False, tok.sep_token_id), cfg.seq_len, **ids)
    if not min(map(len, copies)) or not len(held_out):
        raise ConfigError(f"data: the corpus gives {min(map(len, copies))} training and {len(held_out)} held-out "
                          f"sequences; add documents or lower data.valid_fraction")
    for k, instances in enumerate(copies):
        instances.save(out / "train" / str(k))
    held_out.save(out / "eval")
    regular = copies[0].input_ids[copies[0].input_ids >= tokenizers.num_special(tok)]
    p = np.bincount(regular) / len(regular)
    p = p[p > 0]
    lengths = np.concatenate([c.lengths for c in copies])
    stats = {"train_documents": len(train), "train_tokens": sum(len(s) for doc in train for s in doc),
             "left_out_by_mix": left_out,
             "train_sequences": [len(c) for c in copies], "tokens_per_sequence": float(lengths.mean()),
             "fill": float(lengths.mean() / cfg.seq_len), "eval_sequences": len(held_out), "vocab_size": len(tok),
             "unigram_entropy": float(-(p * np.log(p)).sum())}
    (out / "stats.json").write_text(json.dumps(stats, indent=1))


def mix(sources: dict[str, list], weights: dict[str, float]) -> tuple[list, dict[str, int]]:
    """Interleaves documents so every prefix, all of them included, holds each source's share of tokens as its
    weight says: data.size arms differ in size alone. The mix ends where a source runs out; the tokens the others
    hold past that are left out (and counted)."""
    queues = {name: list(reversed(docs)) for name, docs in sources.items()}
    taken = dict.fromkeys(sources, 0)
    mixed = []
    while queues[name := min(queues, key=lambda n: taken[n] / weights[n])]:
        doc = queues[name].pop()
        taken[name] += sum(map(len, doc))
        mixed.append(doc)
    return mixed, {name: sum(len(s) for doc in queue for s in doc) for name, queue in queues.items()}


def subset(docs: list, size) -> list:
    """The shortest prefix of whole documents holding `size` tokens (or that fraction of all tokens),
    so a smaller data size is always a subset of a larger one."""
    if size is None:
        return docs
    lengths = np.cumsum([sum(map(len, doc)) for doc in docs])
    limit = size if isinstance(size, int) else size * lengths[-1]
    if limit > lengths[-1]:
        raise ConfigError(f"data.size={size} tokens: the training corpus holds only {lengths[-1]}")
    return docs[:int(np.searchsorted(lengths, limit)) + 1]
