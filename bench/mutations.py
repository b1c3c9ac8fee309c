"""Mutation smoke check: applies small deliberate bugs one at a time to a temporary copy of the project, runs the
fast tests (`-m "not slow"`, stopping at the first failure) and prints which bugs they caught. Each entry is a
bug the tests must catch: the wiring gaps a review found, and every bug the fair-arms and statistics work fixed.
Add one whenever a bug is fixed. `python bench/mutations.py [name ...]` (about a minute a mutation on 2 cores).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (file, original text, mutated text)
READ = "    on_disk = read_results(cell.results_path)  # first: a results.json it refuses keeps its checkpoints too\n"
REFIT = ('    refit = cfg.force and cfg.stage == "finetune"'
         '  # force reruns what the stage selects: here the fine-tuning alone\n')
FORCE = ('    if cfg.force and not refit and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":  # once a submission\n'
         '        shutil.rmtree(cell.dir / "checkpoints", ignore_errors=True)\n')
MUTATIONS = {
    # the review's table
    "cell id without model and tokenizer": (
        "ablations/cell.py", '"data", "model", "tokenizer", "seq_len", "seed")', '"data", "seq_len", "seed")'),
    "held-out mask built with the arm's masking": (
        "ablations/data/pipeline.py", "_masker(EVAL_MASKING, tok)),", '_masker(plain["masking"], tok)),'),
    "mask and random-replacement shares swapped in the masker's config": (
        "ablations/data/pipeline.py", 'Masker(settings["mlm_probability"], settings["mask_replace_prob"], '
        'settings["random_replace_prob"],', 'Masker(settings["mlm_probability"], settings["random_replace_prob"], '
        'settings["mask_replace_prob"],'),
    "every static copy drawn with the same key": (
        "ablations/data/masking.py", "else epoch % self.dupe_factor", "else 0"),
    "loader workers started the process's default way (a grid's loky worker cannot)": (
        "ablations/data/masking.py", "multiprocessing.get_all_start_methods()[0] if workers else None", "None"),
    "trainer.compile compiles the model's own forward, which the loss never calls": (
        "ablations/pretraining.py", "module.model.bert.compile(dynamic=True)", "module.model.compile(dynamic=True)"),
    "MNLI task score = matched accuracy only": (
        "ablations/glue/stage.py", 'out[f"{task.name}/score"] = statistics.fmean(scores)',
        'out[f"{task.name}/score"] = scores[0]'),
    "interaction sign flipped": (
        "ablations/report/comparisons.py", "_weights(sides[0])\n    for arm, weight in _weights(sides[1], -1.0)",
        "_weights(sides[1])\n    for arm, weight in _weights(sides[0], -1.0)"),
    "BERT-style and RoBERTa-style arms swapped": (
        "ablations/report/comparisons.py", "    bert, roberta = found\n    describe", "    roberta, bert = found\n    describe"),
    "synthetic GLUE labels shuffled against their texts": (
        "ablations/glue/synthetic.py", '        return [make(rng, topics[i % len(topics)], split != "train") for i in range(n)]',
        '        made = [make(rng, topics[i % len(topics)], split != "train") for i in range(n)]\n'
        '        labels = [e.label for e in made]\n        rng.shuffle(labels)\n'
        '        return [e._replace(label=y) for e, y in zip(made, labels)]'),
    "a resumed run's sampler not moved to its step": (
        "lightning_modules/callbacks.py", 'self.sampler.start_step = checkpoint["global_step"]',
        "self.sampler.start_step = 0"),
    # fair arms (issue 9)
    "budget counts padded slots": (
        "ablations/config.py", "sequences = max(1, round(batch_tokens / tokens_per_sequence))",
        "sequences = batch"),
    "a partial global batch at an epoch's end": (
        "ablations/data/masking.py", "yield list(islice(stream, self.sequences))[rank::world]",
        "yield list(islice(stream, self.sequences - (self.sequences > 1)))[rank::world]"),
    "loss is a mean of micro-batch means": (
        "lightning_modules/pretrain.py",
        'loss = losses["mlm_sum"] / masked + losses.get("nsp_sum", 0) / self.hparams.sequences',
        'loss = (losses["mlm_sum"] / batch["masked_tokens"] + losses.get("nsp_sum", 0) / batch["sequences"]) '
        '/ len(micro_batches)'),
    "NSP pairs built once for every copy": (
        "ablations/data/pipeline.py", "rng=np.random.default_rng((cfg.data.seed, k))",
        "rng=np.random.default_rng((cfg.data.seed, 0))"),
    "gradient clipping not applied": (
        "lightning_modules/pretrain.py", "        if self.hparams.clip_grad_norm:\n",
        "        if False:\n"),
    "fine-tuning inputs not capped at the pretraining length": (
        "ablations/finetuning.py", '"max_length": min(out["max_length"], max_length)}',
        '"max_length": out["max_length"]}'),
    "GLUE results reused whatever their data": (
        "ablations/finetuning.py", 'and held[name].get("data_sha") == data_sha(splits)\n                and ', "and "),
    # faults (issue 14)
    "a results.json that is not a JSON object is trusted": (
        "ablations/cell.py", '        if not isinstance(results, dict):\n            raise',
        '        if False:\n            raise'),
    "force=true deletes checkpoints before results.json is read": (
        "ablations/runner.py", READ + REFIT + FORCE, REFIT + FORCE + READ),
    "a cache folder without its manifest is taken for a killed build": (
        "ablations/data/cache.py", "        manifest = {DONE: -1}", "        return False"),
    "a cache file changed in place at its size is trusted": (
        "ablations/data/cache.py", "    return path.stat().st_size == recorded[0] and _fingerprint(path) == recorded\n",
        "    return path.stat().st_size == recorded[0]\n"),
    # compute accounting (issue 13)
    "a CPU peak measured on a busy machine replaces a higher one": (
        "ablations/compute.py", "    if measured > known.get(key, 0):\n", "    if True:\n"),
    "a reopened cell run never sends the pretraining rows W&B lost": (
        "ablations/runner.py", "            reopened(run, cell, results)\n", ""),
    # honest statistics (issue 10)
    "fine-tuning seeds pooled as replicates": (
        "ablations/report/stats.py", "grouped.setdefault(key[0], []).append(value)",
        "grouped.setdefault(key, []).append(value)"),
    "normal quantile instead of Student's t": (
        "ablations/report/stats.py", "half = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se",
        "half = scipy_stats.norm.ppf(0.5 + CONFIDENCE / 2) * se"),
    "main effect weighted by pairs' seeds, not settings": (
        "ablations/report/comparisons.py", "_terms(arms, column, _weights(settings))",
        "_terms(arms, column, _weights([s for s in settings for _ in range(arms.summary(s[1][0], column).n)]))"),
    "cells are medians, effects means": (
        "ablations/report/stats.py", "Summary(len(v), statistics.fmean(v),", "Summary(len(v), statistics.median(v),"),
    "format rows paired with the last pair format": (
        "ablations/report/comparisons.py", "control = TABLE2_ROWS[0]", "control = TABLE2_ROWS[1]"),
    "W&B curves read one step late": (
        "ablations/report/runs.py", 'points = {int(h["trainer/global_step"]):', 'points = {int(h["trainer/global_step"]) + 1:'),
    # an audit of the report and the training path
    "arms paired on their factors' names alone": (
        "ablations/report/comparisons.py", "return repr(sorted((k, v) for k, v in arms.science(arm).items()",
        'return repr(sorted((k, v) for k, v in arms.science(arm).items() if k.endswith(".name")'),
    "W&B keeps the other seeds of a task one seed of which diverged": (
        "ablations/report/runs.py", 'if set(per_seed) != set(runs[cell_id].recipes[stage][fp]["seeds"]):',
        "if not per_seed:"),
    "a cell averaging fewer seeds than its arm does not say so": (
        "ablations/report/tables.py", 'marked = f" (n={summary.n})" if summary.n != arms.finished(arm) else ""',
        'marked = ""'),
    "held-out evaluation draws from dropout's random stream": (
        "ablations/pretraining.py", "generator=torch.Generator(),", ""),
    "runs of one fingerprint fine-tuned on other data pooled": (
        "ablations/report/tables.py", "if run.data_shas.get((stage, fp, task)) != self.data_used.get((stage, task)):",
        "if False:"),
    "a NaN in a results.json reaches the statistics": (
        "ablations/report/tables.py", "return {k: v for k, v in out.items() if math.isfinite(v)}", "return out"),
    "SQuAD 2.0 scored at the official search's starting threshold": (
        "ablations/rc/stage.py", "threshold = _threshold(metrics.squad(golds, answers, null_odds), golds, null_odds)",
        'threshold = metrics.squad(golds, answers, null_odds)["best_f1_thresh"]'),
    "the random-weights baseline drawn with or without a pooler": (
        "ablations/glue/checkpoint.py", "add_pooling_layer=True)", "add_pooling_layer=reuse_pooler)"),
    # an audit of the runner and the compute accounting
    "a diverged cell rerun from its non-finite checkpoint": (
        "ablations/runner.py", 'if done_before.get("status") == "diverged":', "if False:"),
    "stage=finetune loads the model folder results.json names": (
        "ablations/runner.py", 'from_pretrained(str(cell.dir / "model"), ', 'from_pretrained(results["model_dir"], '),
    "force=true stage=finetune keeps every finished task": (
        "ablations/runner.py", 'refit = cfg.force and cfg.stage == "finetune"', "refit = False"),
    "a relative corpus path hashed as typed": (
        "ablations/config.py", "src.path = to_absolute_path(os.path.expanduser(src.path))", "pass"),
    "an old precision name costed at the fp32 peak": (
        "ablations/config.py", "if str(cfg.trainer.precision) not in PRECISION_DTYPE:", "if False:"),
    "GPUs matched by a substring of their name": (
        "ablations/compute.py", "if words.issuperset(c.split())", "if all(part in name for part in c.split())"),
    "a run that trained no step records a rate of 0": (
        "ablations/pretraining.py", 'trained / timing["train_seconds"] if trained else None,',
        'trained / timing["train_seconds"],'),
    "the training rate counts the held-out evaluations": (
        "ablations/pretraining.py", '"train_seconds": seconds - evaluating.seconds', '"train_seconds": seconds'),
    "fine-tuning leaves deterministic mode on": (
        "ablations/finetuning.py", ", _deterministic_here():", ":"),
    "a grid counts an earlier grid's outcomes": (
        "ablations/grid.py", "            path.unlink()", "            pass"),
    "a grid reports the cells an earlier grid linked in its sweep folder": (
        "ablations/grid.py", '[*sweep.glob(f"*/{OUTCOME}"), *sweep.glob("*/cell")]', 'sweep.glob(f"*/{OUTCOME}")'),
    "a job's folder keeps its link to an earlier run's cell": (
        "ablations/runner.py", "link.unlink(missing_ok=True)", "if link.is_symlink():\n            return"),
    "the arms of one setting summed in an effect, not averaged": (
        "ablations/report/comparisons.py", "side / (len(settings) * len(group))", "side / len(settings)"),
    "'>' in the LaTeX report left to the font, which prints it as '¿'": (
        "ablations/report/render.py", '"<": r"\\textless{}", ">": r"\\textgreater{}",', ""),
    "Table 4 cells held by fewer seeds than the arm's n left unmarked": (
        "ablations/report/tables.py", 'record = _cell(arms, arm, column)\n                cells.append(record["text"])',
        'record = {**_cell(arms, arm, column), "text": fmt(arms.summary(arm, column), column.digits)}\n'
        '                cells.append(record["text"])'),
    "an arm not run shows the paper's settings under our plan's headers": (
        "ablations/report/tables.py", 'return "—" if p is None else f"paper: {fmt_paper(p)}"', "return fmt_paper(p)"),
    # a third audit: the data pipeline and its caches
    "a text_files corpus known by its folder alone": (
        "ablations/config.py", "src.files_sha = files_sha(name, src)", "pass"),
    "source weights give way once a source runs out": (
        "ablations/data/pipeline.py", "while queues[name := min(queues, key=lambda n: taken[n] / weights[n])]:",
        "while any(queues.values()) and queues[name := min((n for n in queues if queues[n]), "
        "key=lambda n: taken[n] / weights[n])]:"),
    "the Hub's rows joined with a newline each": (
        "ablations/data/corpus.py", '"".join(row if row.endswith("\\n") else row + "\\n" for row in rows)',
        '"\\n".join(rows)'),
    "a source's weight trains another tokenizer": (
        "ablations/data/pipeline.py", '{k: v for k, v in src.items() if k != "weight"}', "src"),
}


def run(name: str, mutation: tuple[str, str, str]) -> tuple[bool, float]:
    """(caught, seconds): the fast tests fail on the mutated copy."""
    path, original, mutated = mutation
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "outputs", ".git", "__pycache__"))
        if (ROOT.parent / "shared").is_dir():  # the tests on real data read ../shared, beside the project
            (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
        text = (copy / path).read_text()
        if text.count(original) != 1:
            raise SystemExit(f"{name}: the original text occurs {text.count(original)} times in {path}; update it")
        (copy / path).write_text(text.replace(original, mutated))
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider"],
                                cwd=copy, capture_output=True, text=True)
        return result.returncode != 0, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    names = parser.parse_args().names or list(MUTATIONS)
    rows = [(name, *run(name, MUTATIONS[name])) for name in names]
    width = max(len(n) for n, _, _ in rows)
    print(f"{'deliberate bug':{width}}  caught  seconds")
    for name, caught, seconds in rows:
        print(f"{name:{width}}  {'yes' if caught else 'NO':6}  {seconds:7.0f}")
    print(f"{sum(c for _, c, _ in rows)} of {len(rows)} caught by the fast tests")
    sys.exit(0 if all(c for _, c, _ in rows) else 1)


if __name__ == "__main__":
    main()
