"""The report's outputs: Markdown, LaTeX (booktabs), one CSV per table, figures (PNG and PDF) and one
self-contained HTML page with the figures inlined."""

import base64
import csv
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402

from ablations.report.tables import Table  # noqa: E402


def markdown(title: str, header: list[str], tables: list[Table], notes: list[str]) -> str:
    parts = [f"# {title}", "", *header, ""]
    for table in tables:
        parts += [f"## {table.title}", "", "| " + " | ".join(table.header) + " |",
                  "|" + "|".join("---" for _ in table.header) + "|"]
        parts += ["| " + " | ".join(row) + " |" for row in table.rows]
        parts += [""] + [f"- {note}" for note in table.footnotes] + [""]
    return "\n".join(parts + [f"- {note}" for note in notes]) + "\n"


_LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\^{}", "\\": r"\textbackslash{}", "±": r"$\pm$", "≈": r"$\approx$", "−": "-", "—": "--", "×": r"$\times$"}


def _tex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def latex(tables: list[Table]) -> str:
    parts = ["% needs \\usepackage{booktabs}"]
    for table in tables:
        parts += [r"\begin{table}[t]", r"\centering\small", f"\\caption{{{_tex(table.title)}}}",
                  f"\\begin{{tabular}}{{l{'r' * (len(table.header) - 1)}}}", r"\toprule",
                  " & ".join(map(_tex, table.header)) + r" \\", r"\midrule"]
        parts += [" & ".join(map(_tex, row)) + r" \\" for row in table.rows]
        parts += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(parts)


def write_csv(path: Path, table: Table) -> None:
    records = [{k: _plain(v) for k, v in r.items()} for r in table.records]
    fields = list(dict.fromkeys(k for r in records for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)


def _plain(value):
    """Summaries flatten to their median; everything else as is."""
    return getattr(value, "median", value)


def figures(out: Path, curves: dict[str, list], deltas: Table | None, glue: dict[str, dict]) -> dict[str, str]:
    """Saves each figure as PNG and PDF; returns {name: base64 PNG} for the HTML page."""
    made = {}
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for arm, runs in sorted(curves.items()):
            for i, curve in enumerate(runs):
                steps, losses = zip(*curve)
                ax.plot(steps, losses, label=arm if i == 0 else None, color=f"C{sorted(curves).index(arm) % 10}")
        ax.set(xlabel="optimizer step", ylabel="training loss (MLM [+ NSP])", title="Training loss by arm")
        ax.legend(fontsize=7)
        made["loss_curves"] = _save(fig, out / "loss_curves")
    if deltas is not None:
        rows = [r for r in deltas.records if r.get("delta") is not None and "x" not in r["row"]]
        if rows:
            fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
            labels = [f"{r['row']} / {r['column']}" for r in rows]
            values = [r["delta"] for r in rows]
            errors = [[r["delta"] - r["low"] if r["low"] is not None else 0 for r in rows],
                      [r["high"] - r["delta"] if r["high"] is not None else 0 for r in rows]]
            ax.barh(labels, values, xerr=errors, color=["C7" if r["within_noise"] else "C0" for r in rows])
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set(xlabel="treatment − control (95% bootstrap interval)",
                   title="Effect of each factor (grey: within noise)")
            made["deltas"] = _save(fig, out / "deltas")
    if glue:
        tasks = sorted({t for values in glue.values() for t in values})
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks)), 4))
        width = 0.8 / len(glue)
        for i, (arm, values) in enumerate(sorted(glue.items())):
            xs = [j + i * width for j in range(len(tasks))]
            ax.bar(xs, [values.get(t, (0, 0))[0] for t in tasks], width, yerr=[values.get(t, (0, 0))[1] for t in tasks],
                   label=arm)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tasks))], tasks)
        ax.set(ylabel="dev score x100 (median, ± std)", title="GLUE tasks by arm")
        ax.legend(fontsize=7)
        made["glue_tasks"] = _save(fig, out / "glue_tasks")
    return made


def _save(fig, stem: Path) -> str:
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".pdf"))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    stem.with_suffix(".png").write_bytes(buffer.getvalue())
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def page(title: str, header: list[str], tables: list[Table], notes: list[str], images: dict[str, str]) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "th,td{border-bottom:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child"
             "{text-align:left}small{color:#555}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    parts += [f"<p>{esc(line)}</p>" for line in header]
    for table in tables:
        parts += [f"<h2>{esc(table.title)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.header)
                  + "</tr>"]
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        parts += ["</table>"] + [f"<p><small>{esc(n)}</small></p>" for n in table.footnotes]
    parts += [f"<h2>{esc(name.replace('_', ' '))}</h2><img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
              for name, data in images.items()]
    parts += [f"<p><small>{esc(n)}</small></p>" for n in notes] + ["</body></html>"]
    return "\n".join(parts)
