"""How the CLI shows things: user data never read as rich markup, tables that read at any width, JSON and CSV.

Every string that comes from a user, a file, the store or an instrument (a protocol name, `--sample`, a step
reason, a reply) is either escaped (`esc`) before it goes into a markup string, or handed to rich as a `Text`,
so `[/]` or `[bold]` in data can neither crash a command nor restyle its output.

Tables are laid out here rather than by rich's own shrinking, which wraps every cell of a wide table into
fragments at 80 columns ("protoc / ol"). Key columns (ids, states, times, counts) keep their full width; text
columns share what is left and are cut with an ellipsis; optional columns are left out when even that does
not fit; one `wrap` column (a payload such as an audit event's data) may fold onto several lines instead.
The same rows go to `--json` and `--csv` for machines.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when something is shown (start-up time: see labctl.cli)
    from rich.table import Table

PAD = 2  # spaces between two columns (box=None, padding (0, 1), no edge padding)
MIN_TEXT = 8  # a text column narrower than this says nothing; leave an optional one out instead


_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))


def visible(value: object, keep: str = "\n") -> str:
    """`value` as text that cannot steer the terminal: control characters (an ESC sequence in an instrument's
    reply, a carriage return in a stored name), line and paragraph separators and bidi overrides are shown as
    `\\x1b`, `\\u202e`; the characters in `keep` (a newline in a multi-line message) pass."""
    text = str(value)
    if text.isprintable():
        return text
    import unicodedata

    out = []
    for ch in text:
        code = ord(ch)
        if ch in keep or not (unicodedata.category(ch) in ("Cc", "Zl", "Zp") or code in _BIDI):
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def esc(value: object) -> str:
    """`value` as text safe inside a rich markup string (it renders as itself, control characters visible)."""
    from rich.markup import escape

    return escape(visible(value))


@dataclass(frozen=True)
class Col:
    """One table column.

    `key`: never cut or wrapped (ids, states, times, counts). `wrap`: folds onto more lines instead of being
    cut (at most one per table); it gets the spare width first. `drop`: may be left out when the width is too
    small, highest first. `min`: the narrowest a text column may get (default `MIN_TEXT`).
    """

    name: str
    key: bool = False
    wrap: bool = False
    justify: str = "left"
    drop: int = 0
    min: int = MIN_TEXT


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def widths(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int) -> dict[int, int]:
    """Column index -> content width for a table `width` cells wide; left-out columns are absent."""
    natural = {
        i: max([_cell_len(c.name)] + [_cell_len(r[i]) for r in rows]) for i, c in enumerate(cols)
    }
    shown = list(range(len(cols)))

    def minimum(i: int) -> int:
        c = cols[i]
        return natural[i] if c.key else min(natural[i], max(c.min, min(_cell_len(c.name), 12)))

    while True:
        avail = width - PAD * (len(shown) - 1)
        need = sum(minimum(i) for i in shown)
        droppable = [i for i in shown if cols[i].drop]
        if need <= avail or not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (cols[i].drop, i)))
    out = {i: minimum(i) for i in shown}
    spare = avail - sum(out.values())
    growable = [i for i in shown if not cols[i].key and natural[i] > out[i]]
    wrap = [i for i in growable if cols[i].wrap]
    # a wrap column (the table's payload) grows first, then text columns in proportion to what they lack
    for group in (wrap, [i for i in growable if not cols[i].wrap]):
        lack = sum(natural[i] - out[i] for i in group)
        if spare <= 0 or not lack:
            continue
        give = min(spare, lack)
        for i in group:
            share = (natural[i] - out[i]) * give // lack
            out[i] += share
            spare -= share
        for i in group:  # the rounding remainder, one cell each
            if spare > 0 and out[i] < natural[i]:
                out[i] += 1
                spare -= 1
    return out


def fits(cols: Sequence[Col], rows: Sequence[Sequence[Any]], width: int) -> bool:
    """Whether every column fits `width` at its full width (no cut, no column left out)."""
    texts = [["" if v is None else str(v) for v in r] for r in rows]
    natural = [max([_cell_len(c.name)] + [_cell_len(r[i]) for r in texts]) for i, c in enumerate(cols)]
    return sum(natural) + PAD * (len(cols) - 1) <= width


def table(
    cols: Sequence[Col], rows: Iterable[Sequence[Any]], *, width: int, title: str | None = None
) -> Table:
    """A rich Table of `rows` (cells shown as plain text) laid out for `width` cells."""
    from rich.table import Table
    from rich.text import Text

    texts = [["" if v is None else visible(v, keep="") for v in r] for r in rows]
    w = widths(cols, texts, width)
    t = Table(
        title=esc(title) if title else None,
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
        show_edge=False,
        header_style="bold",
    )
    for i in sorted(w):
        c = cols[i]
        t.add_column(
            c.name,
            width=w[i],
            no_wrap=not c.wrap,
            overflow="fold" if c.wrap else "ellipsis",
            justify=c.justify,  # type: ignore[arg-type]
        )
    for r in texts:
        t.add_row(*(Text(r[i]) for i in sorted(w)))
    return t


def print_table(
    console: Any, cols: Sequence[Col], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """Render `rows` at the console's width (80 when piped, unless COLUMNS says otherwise)."""
    console.print(table(cols, rows, width=console.width, title=title), soft_wrap=False)


def print_json(console: Any, obj: Any) -> None:
    """`obj` as JSON on stdout (non-JSON values such as datetimes as text), indented; coloured on a terminal,
    plain when piped (rich would otherwise be free to wrap or style it)."""
    if console.is_terminal:
        console.print_json(json.dumps(obj, default=str, ensure_ascii=False))
    else:
        sys.stdout.write(json.dumps(obj, default=str, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()


def print_csv(cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """`rows` as CSV (a header line of `cols`) on stdout."""
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    sys.stdout.flush()
