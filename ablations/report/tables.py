"""The paper's tables rebuilt from runs, ours beside the paper's numbers (papers' units: GLUE x100).

Rows are arms (a cell without its seed); an arm's value is the median over its replicates (pretraining seed
x fine-tuning seed). Every table keeps its raw numbers in `records` for the CSV, and its cells as text.
"""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from ablations.report import stats
from ablations.report.runs import FACTORS, Run

PAPER = yaml.safe_load((Path(__file__).parent / "paper.yaml").read_text())
OK = "ok"
# task -> (label, key): single-metric tasks by their metric, the others by the task score (mean of metrics)
TASK_COLUMNS = {"mnli": ("MNLI-m acc", "mnli/accuracy"), "mnli_mm": ("MNLI-mm acc", "mnli_mm/accuracy"),
                "qnli": ("QNLI acc", "qnli/accuracy"), "qqp": ("QQP F1/acc", "qqp/score"),
                "rte": ("RTE acc", "rte/accuracy"), "sst2": ("SST-2 acc", "sst2/accuracy"),
                "mrpc": ("MRPC F1/acc", "mrpc/score"), "cola": ("CoLA MCC", "cola/matthews_correlation"),
                "stsb": ("STS-B Pearson/Spearman", "stsb/score"), "wnli": ("WNLI acc", "wnli/accuracy")}


@dataclass(frozen=True)
class Column:
    label: str
    key: str | None = None     # "glue:<task>/<metric>" per fine-tuning seed, or a metric of the run; None: not measured
    paper: str | None = None   # the paper table's column
    scale: float = 1.0


MNLI_M = Column("MNLI-m acc (dev)", "glue:mnli/accuracy", "mnli_m", 100)
SST2 = Column("SST-2 acc (dev)", "glue:sst2/accuracy", "sst2", 100)
PPL = Column("perplexity (held-out)", "val/perplexity", "perplexity")
SQUAD11, SQUAD20, RACE = Column("SQuAD 1.1 F1 (dev)", paper="squad11"), Column("SQuAD 2.0 F1 (dev)", paper="squad20"), \
    Column("RACE acc (test)", paper="race")


@dataclass
class Table:
    key: str
    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)


def paper_value(table: str, row: str, column: str | None):
    """The paper's number at (table, row, column); else a field of that name on the row (e.g. batch_size)."""
    in_row = [e for e in PAPER["entries"] if e["table"] == table and e["row"] == row]
    candidates = [e for e in in_row if e["column"] == column]
    primary = [e for e in candidates if e.get("primary")] or candidates
    if primary:
        return primary[0]["value"]
    return next((e[column] for e in in_row if column in e), None)


class Arms:
    """The runs grouped into arms, with GLUE numbers only from the chosen fine-tuning fingerprint."""

    def __init__(self, runs: list[Run], fingerprint: str | None):
        self.fingerprint = fingerprint
        by_arm: dict[tuple, list[Run]] = {}
        for run in sorted(runs, key=lambda r: (str(r.arm), r.factors["seed"], r.cell_id)):  # same order from any source
            by_arm.setdefault(run.arm, []).append(run)
        self.by_arm = dict(sorted(by_arm.items(), key=lambda kv: str(kv[0])))

    def find(self, **factors) -> list[tuple]:
        return [arm for arm in self.by_arm if all(dict(arm)[k] == v for k, v in factors.items())]

    def values(self, arm: tuple, key: str, scale: float = 1.0) -> dict[tuple, float]:
        """{replicate: value} over the arm's finished runs."""
        out = {}
        for run in self.by_arm[arm]:
            if run.status != OK:
                continue
            if key.startswith("glue:"):
                for seed, value in run.glue.get(self.fingerprint, {}).get(key.removeprefix("glue:"), {}).items():
                    out[(run.factors["seed"], seed)] = value * scale
            elif key in run.metrics:
                out[(run.factors["seed"],)] = run.metrics[key] * scale
        return out

    def train_tokens(self, **factors) -> int:
        """The training tokens of the arms with these factors: how data sizes are ordered."""
        return max((r.train_tokens or 0) for arm in self.find(**factors) for r in self.by_arm[arm])

    def status(self, arm: tuple) -> str:
        """'' when every run finished; else what happened to the others, e.g. '1 of 2 failed'."""
        runs = self.by_arm[arm]
        bad = [r.status for r in runs if r.status != OK]
        return ", ".join(f"{bad.count(s)} of {len(runs)} {s}" for s in sorted(set(bad)))

    @cached_property
    def varying(self) -> list[str]:
        return [k for k in FACTORS if k != "seed" and len({dict(a)[k] for a in self.by_arm}) > 1]

    def label(self, arm: tuple, shown: set[str]) -> str:
        """The factors that tell this arm from others in the same table row."""
        rest = [show(dict(arm)[k]) for k in self.varying if k not in shown]
        return f" ({', '.join(rest)})" if rest else ""


def show(value) -> str:
    """A factor value as the tables print it (data_size None is the whole corpus)."""
    return "all" if value is None else str(value)


def fmt(summary: stats.Summary | None, digits: int = 1) -> str:
    if summary is None:
        return "—"
    return f"{summary.median:.{digits}f}" + (f" ±{summary.std:.{digits}f}" if summary.n > 1 else "")


def fmt_delta(d: stats.Delta | None, digits: int = 1) -> str:
    if d is None:
        return "—"
    text = f"{d.value:+.{digits}f}"
    if d.low is None:
        return text + " (n=1)"
    return text + f" [{d.low:+.{digits}f}, {d.high:+.{digits}f}]" + (" ≈0" if d.within_noise else "")


def _cell(table: Table, row: str, column: Column, summary, paper):
    table.records.append({"row": row, "column": column.label, **({} if summary is None else vars(summary)),
                          "paper": paper})
    digits = 2 if column.key == "val/perplexity" else 1
    return [fmt(summary, digits)] + ([("—" if paper is None else f"{paper}")] if column.paper else [])


def _header(columns: list[Column]) -> list[str]:
    return [h for c in columns for h in ([c.label] + (["paper"] if c.paper else []))]


def arm_table(arms: Arms, key: str, title: str, paper_table: str, factor_rows: list[tuple[str, str, dict]],
              columns: list[Column], fills: str, settings: list[tuple[str, str, str]] = ()) -> Table | str:
    """A table whose rows are levels of one factor (factor_rows: label, paper row, factor values)."""
    present = [(label, paper_row, arms.find(**where)) for label, paper_row, where in factor_rows]
    if sum(bool(found) for _, _, found in present) < 2:
        return f"{title}: skipped, the runs hold fewer than two of its arms; {fills} fills it."
    shown = {k for _, _, where in factor_rows for k in where}
    table = Table(key, title, ["arm", "runs"] + [s[0] for s in settings] + _header(columns))
    for label, paper_row, found in present:
        for arm in found or [None]:
            name = label + (arms.label(arm, shown) if arm else "")
            if arm is None:
                cells = ["not run"] + [str(paper_value(paper_table, paper_row, s[2]) or "—") for s in settings]
            else:
                runs = arms.by_arm[arm]
                note = arms.status(arm)
                cells = [f"{len(runs)}" + (f" ({note})" if note else "")] + [_setting(runs, s[1]) for s in settings]
            for column in columns:
                summary = stats.summarize(arms.values(arm, column.key, column.scale).values()) if arm and column.key \
                    else None
                cells += _cell(table, name, column, summary, paper_value(paper_table, paper_row, column.paper))
            table.rows.append([name] + cells)
    return table


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
                      [SQUAD20, MNLI_M, SST2, PPL], "python run.py -m masking=static,dynamic")
    if isinstance(table, Table):
        table.footnotes.append("Paper: BERT-base, medians over 5 fine-tuning seeds (RoBERTa Table 1). SQuAD is not "
                               "run by this harness yet. Ours: median ± std over replicates.")
    return table


def table2(arms: Arms) -> Table | str:
    rows = [("segment_pair + NSP", "segment_pair+nsp", {"objective": "mlm_nsp", "input_format": "segment_pair"}),
            ("sentence_pair + NSP", "sentence_pair+nsp", {"objective": "mlm_nsp", "input_format": "sentence_pair"}),
            ("full_sentences", "full_sentences", {"objective": "mlm", "input_format": "full_sentences"}),
            ("doc_sentences", "doc_sentences", {"objective": "mlm", "input_format": "doc_sentences"})]
    table = arm_table(arms, "table2", "Table 2: input format and NSP", "table2", rows,
                      [SQUAD11, SQUAD20, MNLI_M, SST2, RACE, PPL],
                      "python run.py -m objective=mlm_nsp input_format=segment_pair,sentence_pair and "
                      "objective=mlm input_format=full_sentences,doc_sentences")
    if isinstance(table, Table):
        table.footnotes.append("Paper: BERT-base on BookCorpus + Wikipedia (RoBERTa Table 2). SQuAD and RACE are not "
                               "run by this harness yet.")
    return table


def table3(arms: Arms) -> Table | str:
    rows = [(name, name, {"schedule": name}) for name in ("bsz256", "bsz2k", "bsz8k")]
    return arm_table(arms, "table3", "Table 3: batch size at equal tokens", "table3", rows, [PPL, MNLI_M, SST2],
                     "python run.py -m schedule=bsz256,bsz2k,bsz8k",
                     settings=[("batch", "plan.batch", "batch_size"), ("sequences/step", "plan.sequences", ""),
                               ("steps", "plan.steps", "steps"), ("peak LR", "plan.peak_lr", "peak_lr")])


def table4(arms: Arms, columns: list[Column]) -> Table | str:
    sizes = sorted({(dict(a)["data"], dict(a)["data_size"]) for a in arms.by_arm},
                   key=lambda s: arms.train_tokens(data=s[0], data_size=s[1]))
    rows = [(f"{data} {show(size)}", "", {"data": data, "data_size": size})
            for data, size in sizes]
    table = arm_table(arms, "table4", "Table 4: data size", "table4", rows, columns,
                      "python run.py -m data.size=0.25,0.5,1.0",
                      settings=[("train tokens", "train_tokens", "data"), ("steps", "plan.steps", "steps")])
    if isinstance(table, Table):
        for row in sorted({e["row"] for e in PAPER["entries"] if e["table"] == "table4"}):
            entry = next(e for e in PAPER["entries"] if e["table"] == "table4" and e["row"] == row)
            values = [str(paper_value("table4", row, c.paper) or "—") for c in columns if c.paper]
            table.footnotes.append(f"Paper {row} ({entry['data']}, batch {entry['batch_size']}, {entry['steps']} "
                                   f"steps): " + ", ".join(f"{c.paper} {v}" for c, v in
                                                          zip([c for c in columns if c.paper], values)))
    return table


def glue_columns(arms: Arms) -> list[Column]:
    """One column per GLUE task the runs hold, in the papers' order (MNLI matched and mismatched apart)."""
    keys = {k for runs in arms.by_arm.values() for r in runs for k in r.glue.get(arms.fingerprint, {})}
    return [Column(f"{label} (dev)", f"glue:{key}", "mnli_m" if task == "mnli" else task, 100)
            for task, (label, key) in TASK_COLUMNS.items() if key in keys]


def average(arms: Arms, arm: tuple, columns: list[Column]) -> dict[tuple, float]:
    """Per replicate, the mean over the task columns (GLUE's average)."""
    per_column = [arms.values(arm, c.key, c.scale) for c in columns]
    shared = set.intersection(*(set(v) for v in per_column)) if per_column else set()
    return {k: float(np.mean([v[k] for v in per_column])) for k in shared}
