"""(b) Data preparation and masking throughput against what training consumes, side by side in one run.

Reference beside ours: Hugging Face's DataCollatorForLanguageModeling masking the same sequences.
Target: preparing and masking each at least 10x the tokens/s that training consumes, so data is never
the bottleneck. Prepares the shared books when present (text_files), else a large synthetic corpus.
"""

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForLanguageModeling

from common import ROOT, default_cfg
from ablations.config import check
from ablations.data.masking import EpochSampler, collate
from ablations.data.pipeline import prepare
from train_step import module_for, plain_loop

BOOKS = ROOT.parent / "shared" / "data" / "corpus" / "books"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def feed_tokens(dataset, collate_fn, micro_batch, workers, epochs=2):
    sampler = EpochSampler(len(dataset), 0)
    loader = DataLoader(dataset, batch_size=micro_batch, sampler=sampler, collate_fn=collate_fn, num_workers=workers)
    tokens = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        tokens += sum(int(batch["attention_mask"].sum()) for batch in loader)
    return tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--books", type=int, default=8, help="how many of the shared books to prepare")
    args = parser.parse_args()
    if BOOKS.is_dir():
        folder = Path(tempfile.mkdtemp())
        for book in sorted(BOOKS.glob("*.txt"))[:args.books]:
            (folder / book.name).symlink_to(book)
        source = ["data=text_files", f"data.sources.text_files.path={folder}"]
        label = f"{args.books} shared books, {sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB"
    else:
        source, label = ["data.sources.synthetic.num_documents=20000"], "20,000 synthetic documents"
    rows = []
    for masking in ("dynamic", "static"):
        cfg = default_cfg(*source, f"masking={masking}", *(["masking.dupe_factor=2"] if masking == "static" else []))
        plan = check(cfg)
        data, seconds = timed(lambda: prepare(cfg, Path(tempfile.mkdtemp())))
        tokens = data.stats["train_tokens"]
        rows.append((f"prepare ({masking}: corpus, tokenizer, instances, masks)", tokens / seconds))
        pad = data.tokenizer.pad_token_id
        for workers in (0, 1):
            fed, seconds = timed(lambda: feed_tokens(data.train, partial(collate, pad_id=pad), plan.micro_batch, workers))
            rows.append((f"mask + collate, {masking}, {workers} workers", fed / seconds))
    hf = DataCollatorForLanguageModeling(data.tokenizer, mlm_probability=0.15)
    sequences = [{"input_ids": ids[ids != pad].tolist()} for ids in data.train.instances.input_ids]
    batches = [sequences[i:i + plan.micro_batch] for i in range(0, len(sequences), plan.micro_batch)]
    fed, seconds = timed(lambda: sum(int(hf(b)["attention_mask"].sum()) for b in batches))
    rows.append(("reference: HF DataCollatorForLanguageModeling, 0 workers", fed / seconds))

    train_batches = [b for _, b in zip(range(40), DataLoader(
        data.train, batch_size=plan.micro_batch, sampler=EpochSampler(len(data.train), 0),
        collate_fn=partial(collate, pad_id=pad)))]
    seconds = plain_loop(module_for(cfg, plan, data.tokenizer), train_batches)
    consumed = sum(int(b["attention_mask"].sum()) for b in train_batches) / seconds
    print(f"corpus: {label}; model {cfg.model.name}, seq_len {cfg.seq_len}, micro-batch {plan.micro_batch}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'training consumes':62s} {consumed:12.0f} tokens/s")
    for name, rate in rows:
        print(f"{name:62s} {rate:12.0f} tokens/s  {rate / consumed:6.1f}x training")


if __name__ == "__main__":
    main()
