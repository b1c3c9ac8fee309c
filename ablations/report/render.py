"""The report's outputs: Markdown, a LaTeX document (booktabs; every table a float with its caption, label and
notes), one CSV per table, figures (PNG and PDF) and one self-contained HTML page with the figures inlined."""

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

from ablations.report.tables import Table  # noqa: E402


@dataclass
class Figure:
    name: str
    caption: str
    png: str  # base64, for the HTML page


def markdown(title: str, header: list[str], tables: list[Table], notes: list[str], figures: list[Figure]) -> str:
    parts = [f"# {title}", "", *header, ""]
    for table in tables:
        parts += [f"## {table.title}", "", f"*{table.caption}*", "", "| " + " | ".join(table.header) + " |",
                  "|" + "|".join("---" for _ in table.header) + "|"]
        parts += ["| " + " | ".join(row) + " |" for row in table.rows]
        parts += [""] + [f"- {note}" for note in table.footnotes] + [""]
    parts += [f"- {note}" for note in notes] + [""]
    parts += [f"![{f.caption}](figures/{f.name}.png)\n\n*{f.caption}*\n" for f in figures]
    return "\n".join(parts) + "\n"


_LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_\allowbreak{}", "/": r"/\allowbreak{}", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "<": r"\textless{}", ">": r"\textgreater{}",
          "^": r"\^{}", "\\": r"\textbackslash{}", "±": r"$\pm$", "≈": r"$\approx$", "−": "$-$", "—": "--",
          "×": r"$\times$", "√": r"$\surd$", "≤": r"$\leq$", "–": "--", "’": "'"}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def latex(title: str, header: list[str], tables: list[Table], notes: list[str]) -> str:
    """A complete document (pdflatex report.tex); each table float can be copied into a paper as it is, with
    \\usepackage{booktabs,graphicx}."""
    parts = [r"\documentclass[10pt]{article}", r"\usepackage[margin=2cm,landscape]{geometry}",
             r"\usepackage{booktabs,graphicx}", r"\begin{document}", r"\raggedright\sloppy",
             f"\\section*{{{_tex(title)}}}"]
    parts += [_tex(line) + "\n" for line in header]
    for table in tables:
        body = [f"\\begin{{tabular}}{{l{'r' * (len(table.header) - 1)}}}", r"\toprule",
                " & ".join(map(_tex, table.header)) + r" \\", r"\midrule",
                *[" & ".join(map(_tex, row)) + r" \\" for row in table.rows], r"\bottomrule", r"\end{tabular}"]
        parts += [r"\begin{table}[p]", r"\centering\footnotesize",
                  f"\\caption{{{_tex(_float_title(table.title))}. {_tex(table.caption)}}}", f"\\label{{tab:{table.key}}}",
                  r"\resizebox{\linewidth}{!}{%", *body, "}", r"\par\smallskip\raggedright\scriptsize",
                  *[_tex(note) + r"\par" for note in table.footnotes], r"\end{table}", ""]
    parts += [r"\begin{itemize}", *[r"\item " + _tex(note) for note in notes], r"\end{itemize}"] if notes else []
    return "\n".join(parts + [r"\end{document}", ""])


def _float_title(title: str) -> str:
    """LaTeX numbers its own floats: "Table 2: input format and NSP" becomes "Input format and NSP (RoBERTa Table 2)"."""
    number, _, rest = title.partition(": ")
    if not number.startswith("Table ") or not rest:
        return title
    return f"{rest[0].upper()}{rest[1:]} (RoBERTa {number})"


def write_csv(path: Path, table: Table) -> None:
    fields = list(dict.fromkeys(k for r in table.records for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table.records)


def _save(fig, stem: Path) -> str:
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    stem.with_suffix(".png").write_bytes(buffer.getvalue())
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def loss_curves(out: Path, curves: dict[str, list], caption: str) -> Figure | None:
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (arm, runs) in enumerate(sorted(curves.items())):
        for j, curve in enumerate(runs):
            steps, losses = zip(*curve)
            ax.plot(steps, losses, label=arm if j == 0 else None, color=f"C{i % 10}", linewidth=1.2, alpha=0.8)
    ax.set(xlabel="optimizer step", ylabel="training loss (MLM [+ NSP])", title="Training loss by arm (one line per "
           "pretraining seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return Figure("loss_curves", caption, _save(fig, out / "loss_curves"))


def effects(out: Path, records: list[dict], caption: str, show_paper: bool) -> Figure | None:
    """One panel per measured column: each effect's estimate and 95% interval; resolved effects filled, n.s. ones
    grey, effects without an interval (one seed) hollow; the paper's effect as a cross where it compares."""
    rows = [r for r in records if r.get("delta") is not None and not r["row"].startswith("interaction")]
    if not rows:
        return None
    columns = list(dict.fromkeys(r["column"] for r in rows))
    names = list(dict.fromkeys(r["row"] for r in rows))
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols + 3, (0.4 * len(names) + 1.2) * nrows + 0.6),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes.flat, columns):
        for r in (r for r in rows if r["column"] == column):
            y = len(names) - 1 - names.index(r["row"])
            if r["low"] is not None:
                color = "C0" if r["resolved"] else "0.6"
                ax.plot([r["low"], r["high"]], [y, y], color=color, linewidth=2)
                ax.plot(r["delta"], y, "o", color=color)
            else:
                ax.plot(r["delta"], y, "o", markerfacecolor="white", markeredgecolor="0.3")
            if show_paper and isinstance(r.get("paper"), (int, float)):
                ax.plot(r["paper"], y, "x", color="C3", markersize=8)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(column, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(names)), list(reversed(names)), fontsize=8)
    handles = [plt.Line2D([], [], marker="o", color="C0", label="resolved (interval excludes 0)"),
               plt.Line2D([], [], marker="o", color="0.6", label="n.s. (interval holds 0)"),
               plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="0.3",
                          label="no interval (1 seed, or no spread)")]
    if show_paper:
        handles.append(plt.Line2D([], [], marker="x", linestyle="", color="C3", label="paper"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Effect of each factor (treatment − control), 95% t-intervals over pretraining seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return Figure("effects", caption, _save(fig, out / "effects"))


def glue_tasks(out: Path, bars: dict[str, dict], paper_marks: dict[str, dict], caption: str) -> Figure | None:
    """Grouped bars: each arm's mean per task (± std between pretraining seeds); the papers' values as markers."""
    if not bars:
        return None
    tasks = list(dict.fromkeys(t for values in bars.values() for t in values))
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(tasks) + 3), 4.5))
    for i, (arm, values) in enumerate(sorted(bars.items())):
        xs = [j - 0.4 + (i + 0.5) * width for j, t in enumerate(tasks) if t in values]
        ax.bar(xs, [values[t][0] for t in tasks if t in values], width, yerr=[values[t][1] for t in tasks if t in values],
               label=arm, capsize=2)
    for k, (who, values) in enumerate(paper_marks.items()):
        xs = [j for j, t in enumerate(tasks) if t in values]
        ax.plot(xs, [values[t] for t in tasks if t in values], ["D", "*"][k % 2], color=f"C{7 + k}", markersize=8,
                linestyle="", label=f"paper: {who}")
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="dev score x100 (mean ± std over pretraining seeds)", title="Fine-tuning tasks by arm")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return Figure("glue_tasks", caption, _save(fig, out / "glue_tasks"))


def page(title: str, header: list[str], tables: list[Table], notes: list[str], figures: list[Figure]) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}caption{caption-side:top;text-align:left;color:#333;"
             "font-style:italic;padding:4px 0}th,td{border-bottom:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th:first-child,td:first-child{text-align:left}small{color:#555}figure{margin:2em 0}"
             "img{max-width:100%}figcaption{color:#333;font-style:italic}</style></head><body>",
             f"<h1>{esc(title)}</h1>"]
    parts += [f"<p>{esc(line)}</p>" for line in header]
    for table in tables:
        parts += [f"<h2 id='{table.key}'>{esc(table.title)}</h2><table><caption>{esc(table.caption)}</caption><tr>"
                  + "".join(f"<th>{esc(h)}</th>" for h in table.header) + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        parts += ["</table>"] + [f"<p><small>{esc(n)}</small></p>" for n in table.footnotes]
    parts += [f"<figure id='{f.name}'><img alt='{esc(f.caption)}' src='data:image/png;base64,{f.png}'>"
              f"<figcaption>{esc(f.caption)}</figcaption></figure>" for f in figures]
    parts += [f"<p><small>{esc(n)}</small></p>" for n in notes] + ["</body></html>"]
    return "\n".join(parts)
