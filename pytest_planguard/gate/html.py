"""The self-contained HTML report of plan changes (``--planguard-html``, ``planguard diff
--html``), rendered from a :class:`~.review.Review` and nothing else.

One file, inline CSS and JS, no request to anywhere (a Content-Security-Policy that allows
no source but the page's own inline code says so to the browser too).  Unchanged views are
listed, not rendered, so the file stays small for thousands of views.  Per changed view:
the side-by-side sections with intra-line highlights, and the physical plan as a tree whose
added, removed and changed operators are marked.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from html import escape
from typing import Any

from pytest_planguard.gate.review import (
    HEADER,
    CheckRow,
    Review,
    ReviewView,
    TreeNode,
    diff_rows,
    plan_tree,
    sides,
)

TREE_SECTIONS = ("P2 physical", "P1 optimized")
"""The first of these that changed is drawn as a tree."""
GLANCE_LINES = 2
"""Changed lines per section in a view's at-a-glance list."""
MAX_INTRALINE = 2000
OPEN_SECTIONS_UP_TO = 20
"""Up to this many views, every section is shown open; beyond, they start collapsed (a
closed ``details`` is not laid out: the page opens fast with hundreds of views)."""
"""Lines longer than this are marked whole, not character by character."""

_CSS = """
:root{--bg:#fff;--fg:#1f2328;--mut:#59636e;--bd:#d1d9e0;--del:#ffebe9;--delx:#ff818266;
--ins:#dafbe1;--insx:#4ac26b66;--chg:#fff8c5;--card:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;
color:var(--fg);background:var(--bg);margin:0;padding:16px 24px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:24px 0 8px}
h3{font-size:15px;margin:0}code,pre,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace}
.facts,.summary{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.card{background:var(--card);border:1px solid var(--bd);border-radius:6px;padding:6px 10px}
.card b{display:block;font-size:16px}.card span{color:var(--mut);font-size:12px}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid var(--bd);
padding:4px 8px;text-align:left;vertical-align:top}th{background:var(--card)}
.badge{display:inline-block;border-radius:10px;padding:0 8px;margin:1px 2px 1px 0;
font-size:12px;border:1px solid var(--bd);background:#eef1f4}
.c-semantic,.c-schema_breaking,.c-udf,.a-fail,.s-failed,.s-error{background:#ffebe9;
border-color:#ff8182;color:#82071e}
.c-optimizer,.c-physical,.c-new,.a-warn{background:#fff8c5;border-color:#d4a72c;
color:#7d4e00}
.c-schema_additive,.c-cosmetic,.s-passed{background:#dafbe1;border-color:#4ac26b;
color:#116329}
.filters{position:sticky;top:0;background:var(--bg);padding:8px 0;border-bottom:1px solid
var(--bd);display:flex;gap:12px;align-items:center;z-index:2}
input[type=search]{width:320px;padding:4px 8px}
.view{border:1px solid var(--bd);border-radius:6px;margin:16px 0;padding:12px}
.view header{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.accept{background:var(--card);padding:4px 8px;border-radius:4px;display:block;
overflow-x:auto;white-space:pre}
.sbs{table-layout:fixed;margin:6px 0}.sbs td{font:12px/1.4 ui-monospace,Menlo,monospace;
white-space:pre-wrap;word-break:break-all;border:0;padding:0 6px}
.sbs th{font-weight:600;font-size:12px}.sbs .n{width:3em;color:var(--mut);text-align:right}
.sbs .d{background:var(--del)}.sbs .i{background:var(--ins)}.sbs del{background:var(--delx);
text-decoration:none}.sbs ins{background:var(--insx);text-decoration:none}
.sbs .gap td{background:var(--card);text-align:center;color:var(--mut)}
details>summary{cursor:pointer;font-weight:600;margin:6px 0}
.tree ul{list-style:none;margin:0;padding-left:18px;border-left:1px dotted var(--bd)}
.tree>ul{padding-left:0;border:0}.tree li{margin:2px 0}
.op{display:inline-block;font:12px/1.4 ui-monospace,Menlo,monospace;padding:1px 6px;
border-radius:4px;border:1px solid var(--bd);background:#fff}
.op b{font-weight:700}.op.added{background:var(--ins);border-color:#4ac26b}
.op.removed{background:var(--del);border-color:#ff8182;text-decoration:line-through}
.op.changed{background:var(--chg);border-color:#d4a72c}
.op del,.glance del{background:var(--delx);text-decoration:line-through}
.op ins,.glance ins{background:var(--insx);text-decoration:none}
.glance{font:12px/1.5 ui-monospace,Menlo,monospace;margin:4px 0;padding-left:18px}
.legend .op{margin-right:6px}.muted{color:var(--mut)}.hidden{display:none!important}
.unchanged{columns:3 260px;font:12px/1.5 ui-monospace,Menlo,monospace}
"""

_JS = """
(function(){
var q=document.getElementById('q'),c=document.getElementById('cls'),
f=document.getElementById('failing'),n=document.getElementById('shown');
function apply(){var t=q.value.trim().toLowerCase(),k=c.value,fo=f.checked,shown=0;
document.querySelectorAll('[data-view]').forEach(function(e){
var ok=(!t||e.getAttribute('data-text').indexOf(t)>=0)&&
(!k||(' '+e.getAttribute('data-classes')+' ').indexOf(' '+k+' ')>=0)&&
(!fo||e.getAttribute('data-action')==='fail');
e.classList.toggle('hidden',!ok);if(ok&&e.tagName==='TR'){shown++;}});
n.textContent=String(shown);}
q.addEventListener('input',apply);c.addEventListener('change',apply);
f.addEventListener('change',apply);
var h=new URLSearchParams(location.hash.slice(1));
if(h.get('q')){q.value=h.get('q');}if(h.get('class')){c.value=h.get('class');}
if(h.get('failing')){f.checked=true;}
apply();window.planguardFilter=function(text,cls){q.value=text||'';c.value=cls||'';
apply();return Number(n.textContent);};
document.body.offsetHeight;
document.documentElement.setAttribute('data-ready-ms',String(Math.round(performance.now())));
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def render_html(review: Review) -> str:
    """The report as one HTML document."""
    return "".join(_document(review))


def _document(review: Review) -> Iterator[str]:
    yield "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
    yield f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
    yield '<meta name=viewport content="width=device-width,initial-scale=1">'
    yield f"<title>{escape(review.title)}</title><style>{_CSS}</style></head><body>"
    yield f"<h1>{escape(review.title)}</h1>"
    yield "<div class=facts id=facts>"
    for key, value in review.facts:
        yield f"<div class=card><span>{escape(key)}</span><b class=mono>{escape(value)}</b></div>"
    yield "</div><h2>Summary</h2><div class=summary id=summary>"
    for key, value in review.summary:
        yield f"<div class=card><b>{escape(value)}</b><span>{escape(key)}</span></div>"
    yield "</div>"
    yield from _checks(review.checks)
    yield from _findings(review.findings)
    yield from _table(review)
    opened = len(review.views) <= OPEN_SECTIONS_UP_TO
    for view in review.views:
        yield from _view(view, review.labels, opened=opened)
    yield f"<h2>Unchanged views ({len(review.unchanged)})</h2>"
    if review.unchanged:
        yield "<details id=unchanged><summary>listed, not rendered</summary><div class=unchanged>"
        yield "<br>".join(escape(name) for name in review.unchanged)
        yield "</div></details>"
    yield f"<script>{_JS}</script></body></html>\n"


def _checks(checks: Sequence[CheckRow]) -> Iterator[str]:
    if not checks:
        return
    yield "<h2>Invariants and policy</h2><table id=checks><tr><th>check<th>status<th>codes"
    yield "<th>message</tr>"
    for check in checks:
        yield (
            f"<tr><td class=mono>{escape(check.name)}<td>{_badge(check.status, 's')}"
            f"<td class=mono>{escape(' '.join(check.codes))}<td>{escape(check.message)}</tr>"
        )
    yield "</table>"


def _findings(findings: Sequence[Any]) -> Iterator[str]:
    if not findings:
        return
    yield "<h2>Other findings</h2><table id=findings><tr><th>code<th>severity<th>subject"
    yield "<th>message</tr>"
    for finding in findings:
        subject = finding.get("view") or finding.get("dataset") or finding.get("manifest") or ""
        yield (
            f"<tr><td class=mono>{escape(str(finding.get('code', '')))}"
            f"<td>{escape(str(finding.get('severity', '')))}"
            f"<td class=mono>{escape(str(subject))}"
            f"<td>{escape(str(finding.get('message', '')))}</tr>"
        )
    yield "</table>"


def _table(review: Review) -> Iterator[str]:
    classes = sorted({c for view in review.views for c in (view.classes or (view.status,))})
    yield f"<h2>Views to review ({len(review.views)})</h2>"
    yield "<div class=filters><input type=search id=q placeholder='filter by text'>"
    yield "<label>class <select id=cls><option value=''>all</option>"
    for name in classes:
        yield f"<option>{escape(name)}</option>"
    yield "</select></label><label><input type=checkbox id=failing> failing only</label>"
    yield f"<span class=muted><span id=shown>{len(review.views)}</span> of "
    yield f"{len(review.views)} shown</span></div>"
    yield (
        "<table id=changed><tr><th>view<th>target<th>class<th>gate<th>caused by"
        "<th>first diverged at<th>codes</tr>"
    )
    for view in review.views:
        causes = ", ".join(view.caused_by) + (" (inherited)" if view.inherited else "")
        yield (
            f"<tr {_data(view)}><td><a href='#{view.anchor}'>{escape(view.view)}</a>"
            f"<td class=mono>{escape(view.target)}<td>{_classes(view)}"
            f"<td>{_badge(view.action, 'a')}<td>{escape(causes)}"
            f"<td class=mono>{escape(view.first_divergence or '')}"
            f"<td class=mono>{escape(' '.join(view.codes))}</tr>"
        )
    yield "</table>"


def _data(view: ReviewView) -> str:
    text = " ".join(
        (
            view.view,
            view.target,
            *view.classes,
            *view.caused_by,
            view.status,
            view.first_divergence or "",
            *view.rules_started,
            *view.rules_stopped,
        )
    )
    classes = " ".join(view.classes or (view.status,))
    return (
        f'data-view="{escape(view.view)}" data-classes="{escape(classes)}" '
        f'data-action="{escape(view.action)}" data-text="{escape(text.lower())}"'
    )


def _badge(text: str, kind: str) -> str:
    return f"<span class='badge {kind}-{escape(text)}'>{escape(text)}</span>"


def _classes(view: ReviewView) -> str:
    badges = [_badge(name, "c") for name in view.classes or (view.status,)]
    if view.inherited:
        badges.append(_badge("inherited", "c"))
    return "".join(badges)


def _view(view: ReviewView, labels: tuple[str, str], *, opened: bool) -> Iterator[str]:
    yield f"<section class=view id='{view.anchor}' {_data(view)}><header>"
    yield f"<h3>{escape(view.view)}</h3>{_classes(view)}{_badge(view.action, 'a')}"
    yield f"<span class='muted mono'>{escape(view.location or view.target)}</span>"
    yield "</header>"
    if view.message:
        yield f"<p class=mono>{escape(view.message)}</p>"
    yield from _glance(view)
    if view.caused_by:
        how = "inherited from" if view.inherited else "changed through"
        yield f"<p>{how} upstream <b>{escape(', '.join(view.caused_by))}</b></p>"
    yield from _trace(view)
    for key, value in view.extra.items():
        yield f"<p><b>{escape(key)}</b>: <span class=mono>{escape(_plain(value))}</span></p>"
    if view.accept:
        yield f"<p>accept with:<code class=accept>{escape(view.accept)}</code></p>"
    tree = next((s for s in TREE_SECTIONS if s in view.diffs), None)
    if tree is not None:
        old, new = sides(view.diffs[tree])
        yield f"<details{' open' if opened else ''} class=tree-box>"
        yield f"<summary>{escape(tree)} as a tree</summary>"
        yield "<div class=legend muted><span class='op added'>added</span>"
        yield "<span class='op removed'>removed</span><span class='op changed'>changed</span>"
        yield "</div><div class=tree>"
        yield from _tree(plan_tree(old, new))
        yield "</div></details>"
    for section, diff in view.diffs.items():
        is_open = " open" if opened and section != HEADER else ""
        yield f"<details{is_open} class=section><summary>{escape(section)}</summary>"
        yield from _side_by_side(diff, labels)
        yield "</details>"
    yield "</section>"


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return str(value)


def _tree(nodes: Iterable[TreeNode]) -> Iterator[str]:
    depth = -1
    for node in nodes:
        if node.depth > depth:
            yield "<ul><li>" * (node.depth - depth)
        else:
            yield "</li></ul>" * (depth - node.depth) + "</li><li>"
        depth = node.depth
        name, sep, rest = node.text.partition(":")
        was_name, _, was_rest = node.was.partition(":")
        if node.status == "changed" and was_name == name:
            label = f"<b>{escape(name)}</b>{escape(sep)}{_merged(was_rest, rest)}"
        else:
            label = f"<b>{escape(name)}</b>{escape(sep + rest)}"
        title = f" title='was: {escape(node.was)}'" if node.was else ""
        yield f"<span class='op {node.status}'{title}>{label}</span>"
    if depth >= 0:
        yield "</li></ul>" * (depth + 1)


def _side_by_side(diff: str, labels: tuple[str, str]) -> Iterator[str]:
    yield "<table class=sbs><colgroup><col class=n><col><col class=n><col></colgroup>"
    yield f"<tr><th><th>{escape(labels[0])}<th><th>{escape(labels[1])}</tr>"
    left = right = 0
    for tag, a, b in diff_rows(diff):
        if tag == "gap":
            yield "<tr class=gap><td colspan=4>...</tr>"
            continue
        if tag == "replace" and a is not None and b is not None:
            a_html, b_html = _intraline(a, b)
        else:
            a_html, b_html = escape(a or ""), escape(b or "")
        left += a is not None
        right += b is not None
        a_cls = "" if tag == "equal" or a is None else " class=d"
        b_cls = "" if tag == "equal" or b is None else " class=i"
        yield (
            f"<tr><td class=n>{left if a is not None else ''}<td{a_cls}>{a_html}"
            f"<td class=n>{right if b is not None else ''}<td{b_cls}>{b_html}</tr>"
        )
    yield "</table>"


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


def _opcodes(a: str, b: str) -> list[tuple[str, str, str]]:
    """``(tag, old part, new part)`` of two lines, compared token by token (words,
    spaces, single punctuation): much faster than by character on long plan lines, and
    what a reader compares anyway."""
    x, y = _TOKEN.findall(a), _TOKEN.findall(b)
    matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
    return [
        (tag, "".join(x[i1:i2]), "".join(y[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]


def _merged(a: str, b: str) -> str:
    """One line showing ``a`` turned into ``b``: what was removed struck through, what was
    added underlined."""
    if len(a) > MAX_INTRALINE or len(b) > MAX_INTRALINE:
        return f"<del>{escape(a)}</del><ins>{escape(b)}</ins>"
    out = []
    for tag, old, new in _opcodes(a, b):
        if tag == "equal":
            out.append(escape(old))
            continue
        if old:
            out.append(f"<del>{escape(old)}</del>")
        if new:
            out.append(f"<ins>{escape(new)}</ins>")
    return "".join(out)


def _trace(view: ReviewView) -> Iterator[str]:
    """What the rule traces say: where the plan first diverged, the rules that started or
    stopped firing, and a disagreement with the changed sections."""
    if view.first_divergence:
        stage = escape(view.first_divergence)
        yield f"<p class=trace>first diverged at <b class=mono>{stage}</b></p>"
    for label, rules in (("started", view.rules_started), ("stopped", view.rules_stopped)):
        if rules:
            yield f"<p class=trace>rules {label} firing: <span class=mono>"
            yield f"{escape(', '.join(rules))}</span></p>"
    if view.trace_disagreement:
        yield "<p class=trace>trace and sections disagree: "
        yield f"{escape(view.trace_disagreement)}</p>"


def _glance(view: ReviewView) -> Iterator[str]:
    """The first changed lines of each section, each as one merged line: what a reviewer
    reads first."""
    lines = []
    for section, diff in view.diffs.items():
        if section == HEADER:
            continue
        shown = 0
        for tag, a, b in diff_rows(diff):
            if tag in ("equal", "gap") or shown >= GLANCE_LINES:
                continue
            shown += 1
            if tag == "replace" and a is not None and b is not None:
                text = _merged(a.strip(), b.strip())
            elif a is not None:
                text = f"<del>{escape(a.strip())}</del>"
            else:
                text = f"<ins>{escape((b or '').strip())}</ins>"
            lines.append(f"<li><span class=muted>{escape(section)}</span> {text}</li>")
    if lines:
        yield f"<ul class=glance>{''.join(lines)}</ul>"


def _intraline(a: str, b: str) -> tuple[str, str]:
    """The two lines with the characters that differ marked (``del`` / ``ins``)."""
    if len(a) > MAX_INTRALINE or len(b) > MAX_INTRALINE:
        return f"<del>{escape(a)}</del>", f"<ins>{escape(b)}</ins>"
    left, right = [], []
    for tag, old, new in _opcodes(a, b):
        if tag == "equal":
            left.append(escape(old))
            right.append(escape(new))
            continue
        if old:
            left.append(f"<del>{escape(old)}</del>")
        if new:
            right.append(f"<ins>{escape(new)}</ins>")
    return "".join(left), "".join(right)
