"""The paper's tables rebuilt from runs, ours beside the paper's numbers (papers' units: GLUE x100).

Rows are arms (a cell without its seed). A cell is the mean over pretraining seeds of each seed's value (for
GLUE, the median over its fine-tuning seeds), ± the std between pretraining seeds. Every table keeps its raw
numbers in `records` (the CSV) and its cells as text (Markdown, LaTeX, HTML), and says what its runs were.
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from ablations.report import paper, stats
from ablations.report.runs import FACTORS, Run

OK = "ok"
# task -> (label, key): single-metric tasks by their metric, the others by the task score (mean of metrics)
TASK_COLUMNS = {"mnli": ("MNLI-m acc", "mnli/accuracy"), "mnli_mm": ("MNLI-mm acc", "mnli_mm/accuracy"),
                "qnli": ("QNLI acc", "qnli/accuracy"), "qqp": ("QQP F1/acc", "qqp/score"),
                "rte": ("RTE acc", "rte/accuracy"), "sst2": ("SST-2 acc", "sst2/accuracy"),
                "mrpc": ("MRPC F1/acc", "mrpc/score"), "cola": ("CoLA MCC", "cola/matthews_correlation"),
                "stsb": ("STS-B Pearson/Spearman", "stsb/score"), "wnli": ("WNLI acc", "wnli/accuracy")}
CELL_STATISTIC = ("Ours: per pretraining seed the median over fine-tuning seeds, then the mean over pretraining seeds "
                  "± their std; n = pretraining seeds.")


@dataclass(frozen=True)
class Column:
    label: str
    key: str | None = None     # "<glue|rc>:<task>/<metric>" per fine-tuning seed, or a metric of the run
    paper: str | None = None   # the papers' column
    scale: float = 1.0
    digits: int = 1


MNLI_M = Column("MNLI-m acc", "glue:mnli/accuracy", "mnli_m", 100)
SST2 = Column("SST-2 acc", "glue:sst2/accuracy", "sst2", 100)
PPL = Column("perplexity (held-out)", "val/perplexity", "perplexity", digits=2)
LOSS = Column("MLM loss (held-out, nats)", "val/mlm_loss", "mlm_loss", digits=3)
SQUAD11 = Column("SQuAD 1.1 F1", "rc:squad11/f1", "squad11")  # the official script's 0-100
SQUAD20 = Column("SQuAD 2.0 F1", "rc:squad20/f1", "squad20")
RACE = Column("RACE acc", "rc:race/accuracy", "race", 100)


@dataclass
class Table:
    key: str
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)
    caption: str = ""  # what our runs were (corpus, model, fine-tuning)


class Arms:
    """The runs grouped into arms, with fine-tuning numbers only from the chosen fingerprint of each stage."""

    def __init__(self, runs: list[Run], fingerprints: dict[str, str | None]):
        self.fingerprints = fingerprints  # {stage (glue, rc): fingerprint}
        by_arm: dict[tuple, list[Run]] = {}
        for run in sorted(runs, key=lambda r: (str(r.arm), r.factors["seed"], r.cell_id)):  # same order from any source
            by_arm.setdefault(run.arm, []).append(run)
        self.by_arm = dict(sorted(by_arm.items(), key=lambda kv: str(kv[0])))
        self.recipes = {stage: next((r.recipes[stage][fp] for r in runs if fp in r.recipes.get(stage, {})), None)
                        for stage, fp in fingerprints.items()}
        # {(stage, task): Counter of data hashes}: a fingerprint leaves out where the task files are, so runs of
        # one fingerprint may have fed other examples; the version most runs fed fills the columns
        self.data_versions: dict[tuple, Counter] = {}
        for run in runs:
            for (stage, fp, task), sha in run.data_shas.items():
                if fp == fingerprints.get(stage):
                    self.data_versions.setdefault((stage, task), Counter())[sha] += 1
        self.data_used = {key: max(sorted(c, key=str), key=c.get) for key, c in self.data_versions.items()}

    @property
    def recipe(self) -> dict | None:
        return self.recipes.get("glue")

    @property
    def synthetic_glue(self) -> bool:
        return self.synthetic("glue")

    def synthetic(self, stage: str) -> bool:
        return self.recipes.get(stage) is not None and self.recipes[stage]["source"] == "synthetic"

    @cached_property
    def synthetic_corpus(self) -> bool:
        return all(dict(arm)["data"] == "synthetic" for arm in self.by_arm)

    def find(self, **factors) -> list[tuple]:
        return [arm for arm in self.by_arm if all(dict(arm)[k] == v for k, v in factors.items())]

    def science(self, arm: tuple) -> dict:
        """The arm's science settings but the seed (one arm id: the same in each of its runs)."""
        return self.by_arm[arm][0].science

    def values(self, arm: tuple, key: str, scale: float = 1.0) -> dict[tuple, float]:
        """{(pretraining seed, fine-tuning seed) or (pretraining seed,): value} over the arm's finished runs."""
        out = {}
        for run in self.by_arm[arm]:
            if run.status != OK:
                continue
            stage, _, metric = key.partition(":")
            if metric:
                fp, task = self.fingerprints.get(stage), metric.split("/")[0].removesuffix("_mm")
                if run.data_shas.get((stage, fp, task)) != self.data_used.get((stage, task)):
                    continue
                held = run.finetune.get(stage, {}).get(fp, {})
                for seed, value in held.get(metric, {}).items():
                    out[(run.factors["seed"], seed)] = value * scale
            elif key in run.metrics:
                out[(run.factors["seed"],)] = run.metrics[key] * scale
        return {k: v for k, v in out.items() if math.isfinite(v)}  # a NaN in a hand-edited results.json: missing

    def summary(self, arm: tuple | None, column: Column) -> stats.Summary | None:
        if arm is None or column.key is None:
            return None
        return stats.summarize(self.values(arm, column.key, column.scale))

    def train_tokens(self, **factors) -> int:
        """The training tokens of the arms with these factors: how data sizes are ordered."""
        return max((r.train_tokens or 0) for arm in self.find(**factors) for r in self.by_arm[arm])

    def finished(self, arm: tuple) -> int:
        return sum(r.status == OK for r in self.by_arm[arm])

    def status(self, arm: tuple) -> str:
        """How many pretraining seeds finished, and what happened to the others, e.g. '2 (1 of 3 failed)'."""
        runs = self.by_arm[arm]
        bad = [r.status for r in runs if r.status != OK]
        note = ", ".join(f"{bad.count(s)} of {len(runs)} {s}" for s in sorted(set(bad)))
        return f"{self.finished(arm)}" + (f" ({note})" if note else "")

    @cached_property
    def varying(self) -> list[str]:
        return [k for k in FACTORS if k != "seed" and len({dict(a)[k] for a in self.by_arm}) > 1]

    @cached_property
    def ambiguous(self) -> set[tuple]:
        """Factor values that more than one arm has (they differ in a setting the factors do not name)."""
        counts: dict[tuple, int] = {}
        for arm in self.by_arm:
            counts[arm[:-1]] = counts.get(arm[:-1], 0) + 1
        return {factors for factors, n in counts.items() if n > 1}

    def label(self, arm: tuple, shown: set[str]) -> str:
        """The factors that tell this arm from others in the same table row (and its id where they cannot)."""
        rest = [show(dict(arm)[k]) for k in self.varying if k not in shown]
        if arm[:-1] in self.ambiguous:
            rest.append(f"arm {dict(arm)['arm'][:6]}")
        return f" ({', '.join(rest)})" if rest else ""

    def column_label(self, column: Column) -> str:
        """Fine-tuning columns say what they hold: the real task's dev set, or the synthetic task of that shape."""
        stage, _, metric = (column.key or "").partition(":")
        if metric:
            return f"synthetic {column.label}" if self.synthetic(stage) else f"{column.label} (dev)"
        return column.label

    def caption(self, arms: list[tuple] | None = None) -> str:
        """What the runs of these arms were: corpus, model, sequence length and the fine-tuning recipe."""
        runs = [r for arm in (arms or list(self.by_arm)) for r in self.by_arm[arm]]
        corpora = sorted({r.corpus for r in runs if r.corpus})
        models = sorted({f"BERT-{r.factors['model']}" for r in runs})
        seq = sorted({str(r.seq_len) for r in runs if r.seq_len})
        text = f"Ours: {', '.join(models)}, seq_len {'/'.join(seq)}, pretrained on {'; '.join(corpora)}"
        for stage, (synthetic, real) in {"glue": ("synthetic GLUE-shaped tasks", "GLUE"),
                                         "rc": ("synthetic SQuAD/RACE-shaped tasks", "SQuAD/RACE")}.items():
            recipe = self.recipes.get(stage)
            if recipe:
                p, source = recipe["protocol"], recipe["source"]
                text += (f"; fine-tuned on {synthetic if self.synthetic(stage) else f'{real} ({source})'}"
                         f", protocol {p['name']} v{p['version']}, {len(recipe['seeds'])} fine-tuning seeds")
        if self.synthetic_corpus or any(self.synthetic(stage) for stage in self.recipes):
            text += ". Synthetic data: only the directions of effects, not their values, may be set beside the paper's"
        return text + "."


def show(value) -> str:
    """A factor value as the tables print it (data_size None is the whole corpus)."""
    return "all" if value is None else str(value)


def fmt(summary: stats.Summary | None, digits: int = 1) -> str:
    if summary is None:
        return "—"
    return f"{summary.mean:.{digits}f}" + (f" ±{summary.std:.{digits}f}" if summary.n > 1 else "")


def fmt_effect(e: stats.Effect | None, digits: int = 1) -> str:
    """+0.40 [−0.52, +1.32] (n=3, n.s.): the estimate always, its interval and n, and n.s. when the interval
    holds 0 (not resolved: "no effect" and "too few seeds" both read so)."""
    if e is None:
        return "—"
    text = f"{e.value:+.{digits}f}"
    if not e.has_interval:
        return text + (" (1 pretraining seed)" if e.n == 1 else f" (n={e.n}, no spread)")
    return text + f" [{e.low:+.{digits}f}, {e.high:+.{digits}f}] (n={e.n}{'' if e.resolved else ', n.s.'})"


def fmt_paper(p: paper.PaperValue | None, signed: bool = False) -> str:
    if p is None:
        return "—"
    return f"{p.value:+}" if signed and isinstance(p.value, (int, float)) else str(p.value)


def effect_record(row: str, column: str, e: stats.Effect | None, digits: int, p: paper.PaperValue | None) -> dict:
    record = {"row": row, "column": column, "text": fmt_effect(e, digits)}
    if e is not None:
        record.update(delta=e.value, low=e.low, high=e.high, n=e.n, paired=e.paired, resolved=e.resolved,
                      seeds_needed=e.seeds_needed, seeds_needed_for=e.target)
    return {**record, **paper_record(p)}


def paper_record(p: paper.PaperValue | None) -> dict:
    return {} if p is None else {"paper": p.value, "paper_split": p.split, "paper_metric": p.metric,
                                 "paper_source": p.source}


def arm_table(arms: Arms, key: str, title: str, paper_table: str, factor_rows: list[tuple[str, str, dict]],
              columns: list[Column], fills: str, settings: list[tuple[str, str, str]] = ()) -> Table | str:
    """A table whose rows are levels of one factor (factor_rows: label, paper row, factor values), each of our
    columns beside the paper's."""
    present = [(label, paper_row, arms.find(**where)) for label, paper_row, where in factor_rows]
    if sum(bool(found) for _, _, found in present) < 2:
        return f"{title}: skipped, the runs hold fewer than two of its arms; {fills} fills it."
    shown = {k for _, _, where in factor_rows for k in where}
    header = ["arm", "n"] + [s[0] for s in settings]
    for column in columns:
        header += [arms.column_label(column)] + (["paper"] if column.paper else [])
    table = Table(key, title, header, caption=arms.caption([a for _, _, found in present for a in found]))
    for label, paper_row, found in present:
        for arm in found or [None]:
            name = label + (arms.label(arm, shown) if arm else "")
            if arm is None:  # the paper's settings, labelled: the columns hold our plan's
                cells = ["not run"] + [_paper_setting(paper.value(paper_table, paper_row, s[2])) for s in settings]
            else:
                cells = [arms.status(arm)] + [_setting(arms.by_arm[arm], s[1]) for s in settings]
            for column in columns:
                record = _cell(arms, arm, column)
                p = paper.value(paper_table, paper_row, column.paper) if column.paper else None
                table.records.append({"row": name, "column": arms.column_label(column), **record, **paper_record(p)})
                cells += [record["text"]] + ([fmt_paper(p)] if column.paper else [])
            table.rows.append([name] + cells)
    table.footnotes += [CELL_STATISTIC, FEWER_SEEDS]
    return table


FEWER_SEEDS = ("(n=k) after a cell: only k of the arm's finished pretraining seeds hold that value (for the others the "
               "task's fine-tuning failed or diverged in some seed, or the value is not a finite number).")


def _cell(arms: Arms, arm: tuple | None, column: Column) -> dict:
    """An arm's cell in a column: its text, marked where fewer of the arm's seeds hold it than its n says, and the
    summary's n, mean and std for the table's records."""
    summary = arms.summary(arm, column)
    if summary is None:
        return {"text": fmt(summary, column.digits)}
    marked = f" (n={summary.n})" if summary.n != arms.finished(arm) else ""
    return {"text": fmt(summary, column.digits) + marked, "n": summary.n, "mean": summary.mean, "std": summary.std}


def _paper_setting(p: paper.PaperValue | None) -> str:
    return "—" if p is None else f"paper: {fmt_paper(p)}"


def _setting(runs: list[Run], key: str) -> str:
    values = {str(_get(r, key)) for r in runs}
    return ", ".join(sorted(values))


def _get(run: Run, key: str):
    if key.startswith("plan."):
        return run.plan.get(key.removeprefix("plan."))
    return getattr(run, key)


def table1(arms: Arms) -> Table | str:
    table = arm_table(arms, "table1", "Table 1: static vs dynamic masking", "table1",
                      [("static", "static", {"masking": "static"}), ("dynamic", "dynamic", {"masking": "dynamic"})],
                      [SQUAD20, MNLI_M, SST2, PPL], "python run.py -m experiment=table1_masking")
    if isinstance(table, Table):
        table.footnotes += ["Paper: BERT-base on BookCorpus + Wikipedia, medians over 5 fine-tuning seeds (RoBERTa "
                            "Table 1, dev). SQuAD: F1 on the official script's 0-100 scale; 2.0 at the no-answer "
                            "threshold chosen on dev.", paper.caveat("table1_split")]
    return table


def table2(arms: Arms) -> Table | str:
    table = arm_table(arms, "table2", "Table 2: input format and NSP", "table2", TABLE2_ROWS,
                      [SQUAD11, SQUAD20, MNLI_M, SST2, RACE, PPL], "python run.py -m experiment=table2_input_format")
    if isinstance(table, Table):
        table.footnotes.append("Paper: BERT-base on BookCorpus + Wikipedia (RoBERTa Table 2, dev; RACE dev too). "
                               "SQuAD: F1 (0-100), 2.0 at the no-answer threshold chosen on dev; RACE: accuracy on "
                               "middle and high together.")
    return table


TABLE2_ROWS = [("segment_pair + NSP", "segment_pair+nsp", {"objective": "mlm_nsp", "input_format": "segment_pair"}),
               ("sentence_pair + NSP", "sentence_pair+nsp", {"objective": "mlm_nsp", "input_format": "sentence_pair"}),
               ("full_sentences", "full_sentences", {"objective": "mlm", "input_format": "full_sentences"}),
               ("doc_sentences", "doc_sentences", {"objective": "mlm", "input_format": "doc_sentences"})]


def table3(arms: Arms) -> Table | str:
    rows = [(name, name, {"schedule": name}) for name in ("bsz256", "bsz2k", "bsz8k")]
    table = arm_table(arms, "table3", "Table 3: batch size at equal tokens", "table3", rows, [PPL, MNLI_M, SST2],
                      "python run.py -m experiment=table3_batch_size",
                      settings=[("batch", "plan.batch", "batch_size"), ("sequences/step", "plan.sequences", ""),
                                ("steps", "plan.steps", "steps"), ("peak LR", "plan.peak_lr", "peak_lr")])
    if isinstance(table, Table):
        table.footnotes.append("Paper: BERT-base at the paper's scale (256 x 512 tokens x 1M steps and the same tokens "
                               "in larger batches); its perplexity is on held-out training data. Ours is the held-out "
                               "MLM perplexity under one fixed 15% mask: compare directions, not values. "
                               + paper.caveat("table3_perplexity"))
    return table


TABLE4_PAPER_ROWS = ["roberta_books_wiki_100k", "roberta_more_data_100k", "roberta_300k", "roberta_500k", "bert_large",
                     "xlnet_large", "xlnet_large_more_data"]


def table4(arms: Arms) -> Table | str:
    """Our data sizes, then the paper's rows in the same columns (its Table 4 reports SQuAD 1.1/2.0, MNLI-m and
    SST-2; a column it lacks says so)."""
    columns = [SQUAD11, SQUAD20, MNLI_M, SST2, PPL]
    sizes = sorted({(dict(a)["data"], dict(a)["data_size"]) for a in arms.by_arm},
                   key=lambda s: arms.train_tokens(data=s[0], data_size=s[1]))
    if len(sizes) < 2:
        return "Table 4: data size: skipped, the runs hold fewer than two data sizes; " \
               "python run.py -m experiment=table4_data_size fills it."
    header = ["arm", "n", "train data", "steps"] + [arms.column_label(c) for c in columns]
    table = Table("table4", "Table 4: data size", header, caption=arms.caption())
    shown = {"data", "data_size"}
    for data, size in sizes:
        for arm in arms.find(data=data, data_size=size):
            name = f"{data} {show(size)}{arms.label(arm, shown)}"
            cells = [arms.status(arm), f"{_setting(arms.by_arm[arm], 'train_tokens')} tokens",
                     _setting(arms.by_arm[arm], "plan.steps")]
            for column in columns:
                record = _cell(arms, arm, column)
                cells.append(record["text"])
                table.records.append({"row": name, "column": arms.column_label(column), **record})
            table.rows.append([name] + cells)
    for row in TABLE4_PAPER_ROWS:
        entry = next(e for e in paper.entries("table4") if e["row"] == row)
        cells = []
        for column in columns:
            p = paper.value("table4", row, column.paper)
            cells.append("not in paper" if p is None else str(p.value))
            table.records.append({"row": f"{row} (paper)", "column": arms.column_label(column), "text": cells[-1],
                                  **paper_record(p)})
        table.rows.append([f"paper: {row.replace('_', ' ')}", "—", entry["data"], f"{entry['steps']}"] + cells)
    table.footnotes += [CELL_STATISTIC, FEWER_SEEDS, "Paper rows: RoBERTa Table 4 (dev), each at its own data, batch "
                        "and steps; it has no perplexity column. " + paper.caveat("table4_notes")]
    return table


def rc_columns(arms: Arms) -> list[Column]:
    """SQuAD 1.1, SQuAD 2.0 and RACE, those the runs hold."""
    keys = {k for runs in arms.by_arm.values() for r in runs
            for k in r.finetune.get("rc", {}).get(arms.fingerprints.get("rc"), {})}
    return [c for c in (SQUAD11, SQUAD20, RACE) if c.key.removeprefix("rc:") in keys]


def glue_columns(arms: Arms) -> list[Column]:
    """One column per GLUE task the runs hold, in the papers' order (MNLI matched and mismatched apart)."""
    keys = {k for runs in arms.by_arm.values() for r in runs
            for k in r.finetune.get("glue", {}).get(arms.fingerprints.get("glue"), {})}
    return [Column(label, f"glue:{key}", "mnli_m" if task == "mnli" else task, 100)
            for task, (label, key) in TASK_COLUMNS.items() if key in keys]
