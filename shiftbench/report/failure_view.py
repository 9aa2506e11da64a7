"""The failure browser: the changed examples of :mod:`shiftbench.report.failures` as one
HTML section (the run report, ``mitigate``'s report and the gate's examples page all embed
it).

Each row shows both texts with the edits marked (a word-level diff, and a character-level
one inside each changed word), the label, both predictions with their probabilities and
the drop of the true label's probability; a generation group shows the target, both
generated texts (diffed the same way) and the drop of their score, and has no class
filter. Filters by group, direction and class are plain
inline JavaScript (no network, nothing fetched from elsewhere). The first ``inline`` rows
of each group are in the page; when a group has more, every row goes to a sidecar script
beside the page, which the "show all" button loads with a ``<script src>`` (that works
from ``file://``, where a ``fetch`` of a JSON file does not). Every text is escaped.

Stable hooks for scripts and browser tests: filters ``#fb-group``, ``#fb-direction`` and
``#fb-class`` (option values: a group key, a direction key of
:data:`~shiftbench.report.failures.DIRECTIONS`, a class; a generation view has no
``#fb-class``), rows ``tr.fb-row`` with
``data-group``, ``data-direction`` and ``data-class``, the table ``#fb-table``, the count
of shown rows ``#fb-shown``, the button ``#fb-more`` (``data-src``: the sidecar). A page
opened at ``#<group key>`` starts filtered to that group.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from html import escape
from pathlib import Path

from shiftbench.report.failures import DIRECTIONS, Example, Group, Side
from shiftbench.report.markdown import shown_as
from shiftbench.report.numbers import MISSING

INLINE = 50  # rows per group in the page; the rest in the sidecar
SIDECAR_CALLBACK = "shiftbenchFailures"
_TOKENS = re.compile(r"\s+|\S+")
SAME_WORD = 0.5  # two words this alike (difflib's ratio) are one word edited

CSS = """
.fb-filters{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;margin:8px 0}
table.fb-table{table-layout:fixed;width:100%}
.fb-table td{overflow-wrap:anywhere}.fb-table td.text{white-space:pre-wrap}
.fb-table del,.fb-table ins{text-decoration:none;border-radius:2px;padding:0 1px}
.fb-table del{background:#fde2e1}.fb-table ins{background:#dcf5dc}
.fb-table del b{background:#f5a3a0;font-weight:inherit}
.fb-table ins b{background:#8fd68f;font-weight:inherit}
.fb-broke td:first-child{border-left:3px solid #c0392b}
.fb-fixed td:first-child{border-left:3px solid #2e8b57}
.fb-flipped td:first-child,.fb-error td:first-child{border-left:3px solid #e8a33d}
@media print{.fb-filters,#fb-more{display:none}}
"""

SCRIPT = """(function(){
var body=document.getElementById("fb-table").tBodies[0];
var filters=["group","direction","class"].map(function(k){
return [k,document.getElementById("fb-"+k)];}).filter(function(f){return f[1];});
function apply(){var shown=0;
Array.prototype.forEach.call(body.rows,function(row){
var keep=filters.every(function(f){
return !f[1].value||row.getAttribute("data-"+f[0])===f[1].value;});
row.hidden=!keep;if(keep){shown++;}});
document.getElementById("fb-shown").textContent=String(shown);}
filters.forEach(function(f){f[1].addEventListener("change",apply);});
window.""" + SIDECAR_CALLBACK + """=function(rows){body.innerHTML=rows;
var more=document.getElementById("fb-more");if(more){more.remove();}apply();};
var more=document.getElementById("fb-more");
if(more){more.addEventListener("click",function(){more.disabled=true;
var s=document.createElement("script");s.src=more.getAttribute("data-src");
s.onerror=function(){more.textContent="could not read "+more.getAttribute("data-src")+
" (keep it beside this page)";};document.head.appendChild(s);});}
var start=location.hash.slice(1),group=filters[0][1];
try{start=decodeURIComponent(start);}catch(e){start="";}
if(Array.prototype.some.call(group.options,function(o){return o.value===start;})){
group.value=start;}
apply();})();"""


@dataclass(frozen=True)
class FailureView:
    """The section's HTML, and the sidecar script's text when some rows are not inline."""

    html: str
    sidecar: str | None


def _mark(tag: str, token: str) -> str:
    return escape(token) if token.isspace() else f"<{tag}>{escape(token)}</{tag}>"


def _char_diff(old: str, new: str) -> tuple[str, str]:
    """Two changed words, with the characters that differ in ``<b>`` (none for words too
    unlike to be one word edited: the whole word changed)."""
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    if matcher.ratio() < SAME_WORD:
        return escape(old), escape(new)
    a, b = [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            a.append(escape(old[i1:i2]))
            b.append(escape(new[j1:j2]))
            continue
        if i2 > i1:
            a.append(f"<b>{escape(old[i1:i2])}</b>")
        if j2 > j1:
            b.append(f"<b>{escape(new[j1:j2])}</b>")
    return "".join(a), "".join(b)


def diff_html(old: str, new: str) -> tuple[str, str]:
    """``old`` and ``new`` as HTML with the words that differ in ``<del>`` / ``<ins>``: a
    word-level diff, and where a run of words was replaced by as many, a character-level
    diff inside each pair (``<b>``)."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out_a.append(escape("".join(a[i1:i2])))
            out_b.append(escape("".join(b[j1:j2])))
        elif op == "replace" and i2 - i1 == j2 - j1:
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                if x.isspace() or y.isspace():
                    out_a.append(_mark("del", x))
                    out_b.append(_mark("ins", y))
                else:
                    cx, cy = _char_diff(x, y)
                    out_a.append(f"<del>{cx}</del>")
                    out_b.append(f"<ins>{cy}</ins>")
        else:
            out_a += [_mark("del", t) for t in a[i1:i2]]
            out_b += [_mark("ins", t) for t in b[j1:j2]]
    return "".join(out_a), "".join(out_b)


def _texts(example: Example) -> tuple[str, str]:
    """The before and after text cells: the diff of two texts, one text when they are the
    same (two models on one input), a dash for a side without a text."""
    before = example.before.text if example.before else None
    after = example.after.text
    if before is None or after is None:
        return (MISSING if before is None else escape(before),
                MISSING if after is None else escape(after))
    if before == after:
        return escape(before), '<span class="note">same text</span>'
    return diff_html(before, after)


def _prediction(side: Side | None) -> str:
    return MISSING if side is None else f"{escape(side.output)} ({side.confidence:.2f})"


def _outputs(example: Example) -> tuple[str, str]:
    """Both predictions' cells: classes with their probabilities, or generated texts
    (diffed when there are two)."""
    before, after = example.before, example.after
    if after.confidence is not None:
        return _prediction(before), _prediction(after)
    if before is None:
        return MISSING, escape(after.output)
    return diff_html(before.output, after.output)


def _drop(example: Example) -> str:
    after = example.after
    if example.before is None:
        return (f"score {after.score:.2f}" if after.confidence is None
                else f"confidence {after.confidence:.2f}")
    return (f"{example.drop:+.2f}<br><span class=\"note\">{example.before.score:.2f} → "
            f"{after.score:.2f}</span>")


def row_html(group: Group, example: Example) -> str:
    """One example as a table row, with the attributes the filters read."""
    before, after = _texts(example)
    attrs = (f'class="fb-row fb-{example.direction}" data-group="{escape(group.key)}" '
             f'data-direction="{example.direction}" data-class="{escape(example.label)}"')
    cells = [escape(group.key), f"{escape(example.id)}<br>{escape(example.label)}",
             escape(DIRECTIONS[example.direction]), before, after, *_outputs(example),
             _drop(example)]
    classes = ["", "", "", "text", "text", "text", "text", "num"]
    return (f"<tr {attrs}>"
            + "".join(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>"
                      for c, cell in zip(classes, cells, strict=True))
            + "</tr>")


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    body = "".join(f'<option value="{escape(value)}">{escape(text)}</option>'
                   for value, text in [("", "all"), *options])
    return f'<label>{label} <select id="fb-{name}">{body}</select></label>'


def _directions(groups: list[Group]) -> list[str]:
    """The directions any of ``groups`` can hold, in DIRECTIONS order."""
    return [d for d in DIRECTIONS if any(d in g.directions for g in groups)]


def _summary(groups: list[Group], inline: int) -> str:
    directions = _directions(groups)
    head = "".join(f"<th>{h}</th>" for h in ("group", "compared",
                                              *(DIRECTIONS[d] for d in directions),
                                              "in the page"))
    rows = []
    for g in groups:
        counts = [str(g.count(d)) if d in g.directions else MISSING for d in directions]
        cells = [str(g.n), *counts, str(min(inline, len(g.examples)))]
        rows.append(f"<tr><td>{escape(g.key)}</td>"
                    + "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def failure_view(groups: list[Group], sidecar_name: str, sides: tuple[str, str],
                 inline: int = INLINE) -> FailureView:
    """The browser over ``groups``: a summary per group, the filters and the rows (the
    first ``inline`` of each group in the page). ``sides`` head the two text columns
    (e.g. "original", "shifted"); ``sidecar_name``: the sidecar's file name, beside the
    page."""
    rows = [(g, e) for g in groups for e in g.examples]
    shown = "".join(row_html(g, e) for g in groups for e in g.examples[:inline])
    rest = len(rows) - sum(min(inline, len(g.examples)) for g in groups)
    metric = next((g.metric for g in groups if g.metric), None)
    filters = "".join([
        _select("group", "group", [(g.key, f"{g.key} ({len(g.examples)})") for g in groups]),
        _select("direction", "change", [(d, text) for d, text in DIRECTIONS.items()
                                         if any(e.direction == d for _, e in rows)]),
        "" if metric else _select("class", "label",
                                  [(c, c) for c in sorted({e.label for _, e in rows})]),
        '<span><span id="fb-shown"></span> shown</span>',
        (f'<button type="button" id="fb-more" data-src="{escape(sidecar_name)}">show all '
         f"{len(rows)} (the page holds the first {inline} per group)</button>" if rest else ""),
    ])
    output = "output" if metric else "prediction"
    head = "".join(f"<th>{h}</th>" for h in (
        "group", "id / target" if metric else "id / label", "change", escape(sides[0]),
        escape(sides[1]), f"{output} ({escape(sides[0])})", f"{output} ({escape(sides[1])})",
        f"drop of {escape(shown_as(metric)[0])}" if metric else "drop of P(label)"))
    shares = (11, 12, 7, 18, 18, 13, 13, 8) if metric else (13, 9, 8, 23, 23, 8, 8, 8)
    widths = "".join(f'<col style="width:{w}%">' for w in shares)
    html = (f"<style>{CSS}</style>{_summary(groups, inline)}"
            f'<div class="fb-filters">{filters}</div>'
            f'<table id="fb-table" class="fb-table"><colgroup>{widths}</colgroup>'
            f"<thead><tr>{head}</tr></thead><tbody>{shown}</tbody></table>"
            f"<script>{SCRIPT}</script>")
    sidecar = None
    if rest:
        every = "".join(row_html(g, e) for g, e in rows)
        sidecar = f"{SIDECAR_CALLBACK}({json.dumps(every)});\n"
    return FailureView(html, sidecar)


def save_sidecar(view: FailureView, path: Path) -> None:
    """Write the view's sidecar at ``path``, or remove a stale one when it has none."""
    from shiftbench.report import write_text

    if view.sidecar is None:
        path.unlink(missing_ok=True)
    else:
        write_text(path, view.sidecar)
