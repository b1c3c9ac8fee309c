"""(b) Data preparation and masking throughput against what training consumes, side by side in one run.

Reference beside ours: Hugging Face's DataCollatorForLanguageModeling masking the same sequences.
Target: preparing and masking each at least 10x the tokens/s that training consumes, so data is never
the bottleneck. Prepares the shared books when present (text_files), else a large synthetic corpus.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling

from common import ROOT, default_cfg, train_steps
from ablations.budget import budget
from ablations.data.masking import GlobalBatches, training_loader
from ablations.data.pipeline import prepare
from train_step import module_for, plain_loop

BOOKS = ROOT.parent / "shared" / "data" / "corpus" / "books"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def feed_tokens(data, spend, workers, epochs=2):
    """Real tokens of `epochs` epochs as the training loader feeds them (masked, collated into micro-batches)."""
    steps = round(epochs * data.train.size(0) / spend.plan.sequences)
    batches = GlobalBatches([len(c) for c in data.train.copies], spend.plan.sequences, steps, seed=0)
    loader = training_loader(data.train, batches, data.tokenizer.pad_token_id, spend.plan.micro_batch, workers)
    return sum(mb["real_tokens"] for step in loader for mb in step)


def measure(books: int) -> dict:
    """Tokens/s of preparing and of masking + collating (each masking, 0 and 1 workers), HF's collator on the same
    sequences, and what training consumes, all in this one run."""
    if BOOKS.is_dir():
        folder = Path(tempfile.mkdtemp())
        for book in sorted(BOOKS.glob("*.txt"))[:books]:
            (folder / book.name).symlink_to(book)
        source = ["data=text_files", f"data.sources.text_files.path={folder}"]
        label = f"{books} shared books, {sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.1f} MB"
    else:
        source, label = ["data.sources.synthetic.num_documents=20000"], "20,000 synthetic documents"
    rows = {}
    for masking in ("dynamic", "static"):
        cfg = default_cfg(*source, f"masking={masking}", "masking.dupe_factor=2")
        data, seconds = timed(lambda: prepare(cfg, Path(tempfile.mkdtemp())))
        spend = budget(cfg, data)
        rows[f"prepare ({masking}: corpus, tokenizer, instances, held-out mask)"] = data.stats["train_tokens"] / seconds
        for workers in (0, 1):
            fed, seconds = timed(lambda: feed_tokens(data, spend, workers))
            rows[f"mask + collate, {masking}, {workers} workers"] = fed / seconds
    pad = data.tokenizer.pad_token_id
    hf = DataCollatorForLanguageModeling(data.tokenizer, mlm_probability=0.15)
    ids = data.train.instances(0).input_ids
    sequences = [{"input_ids": row[row != pad].tolist()} for row in ids]
    batches = [sequences[i:i + spend.plan.micro_batch] for i in range(0, len(sequences), spend.plan.micro_batch)]
    fed, seconds = timed(lambda: sum(int(hf(b)["attention_mask"].sum()) for b in batches))
    rows["reference: HF DataCollatorForLanguageModeling, 0 workers"] = fed / seconds
    steps = train_steps(data, spend, 20)
    seconds = plain_loop(module_for(cfg, spend, data.tokenizer), steps)
    consumed = sum(mb["real_tokens"] for step in steps for mb in step) / seconds
    return {"corpus": label, "model": cfg.model.name, "consumed": consumed, "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--books", type=int, default=8, help="how many of the shared books to prepare")
    m = measure(parser.parse_args().books)
    print(f"corpus: {m['corpus']}; model {m['model']}, {torch.get_num_threads()} threads")
    print(f"{'training consumes':62s} {m['consumed']:12.0f} tokens/s")
    for name, rate in m["rows"].items():
        print(f"{name:62s} {rate:12.0f} tokens/s  {rate / m['consumed']:6.1f}x training")


if __name__ == "__main__":
    main()
