"""`vsc map pick`: a terminal picker over a vendor's catalog, built on rich and plain key reads.

Nothing here needs more than a terminal that understands ANSI escapes: keys are
read from stdin in cbreak mode (so it works over SSH and in any emulator), the
screen is redrawn whole with rich on every key. `Picker` holds the state and
turns keys into changes; it knows nothing of terminals, so it is easy to test.
`run()` wires it to the real terminal.

Keys: ↑/↓ (or k/j) move, ←/→ (or PgUp/PgDn) page, space selects or unselects,
`a` selects every unlinked product shown (again: unselects them), `/` starts a
search (typing filters by title, id, SKU, tag or type; Enter or ↓ keeps the
filter, Esc clears it), Enter finishes, `q` or Esc quits without choosing.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from vsc.connectors.base import Product


@dataclass
class Picker:
    """The picker's state: the catalog, what is shown, the cursor, the selection."""

    products: Sequence[Product]
    linked: set[str]
    page_size: int = 10
    title: str = "choose products"
    query: str = ""
    searching: bool = False
    cursor: int = 0
    selected: set[str] = field(default_factory=set)
    message: str = ""
    done: bool = False
    cancelled: bool = False

    def shown(self) -> list[Product]:
        q = self.query.strip().casefold()
        if not q:
            return list(self.products)
        out = []
        for p in self.products:
            hay = [p.title, p.id, p.product_type or "", *p.tags, *(v.sku or "" for v in p.variants)]
            if any(q in h.casefold() for h in hay):
                out.append(p)
        return out

    @property
    def page(self) -> int:
        return self.cursor // self.page_size

    def chosen(self) -> list[Product]:
        return [p for p in self.products if p.id in self.selected]

    def _move(self, delta: int) -> None:
        n = len(self.shown())
        self.cursor = max(0, min(n - 1, self.cursor + delta)) if n else 0

    def handle(self, key: str) -> None:
        """Apply one key (names from `read_key`: "up", "enter", "x", ...)."""
        self.message = ""
        if self.searching:
            if key in ("enter", "down"):
                self.searching = False
            elif key == "esc":
                self.searching, self.query = False, ""
            elif key == "backspace":
                self.query = self.query[:-1]
            elif len(key) == 1 and key.isprintable():
                self.query += key
            self.cursor = 0 if key not in ("enter", "down") else self.cursor
            return
        shown = self.shown()
        if key in ("up", "k"):
            self._move(-1)
        elif key in ("down", "j"):
            self._move(1)
        elif key in ("pgdn", "right", "n"):
            self._move(self.page_size)
            self.cursor = min(self.cursor, max(0, len(shown) - 1))
        elif key in ("pgup", "left", "p"):
            self._move(-self.page_size)
        elif key == "home":
            self.cursor = 0
        elif key == "end":
            self._move(len(shown))
        elif key == " ":
            if shown:
                p = shown[self.cursor]
                if p.id in self.linked:
                    self.message = f"{p.title} is already linked"
                elif p.id in self.selected:
                    self.selected.discard(p.id)
                else:
                    self.selected.add(p.id)
                self._move(1)
        elif key == "a":
            free = {p.id for p in shown if p.id not in self.linked}
            if free and free <= self.selected:
                self.selected -= free
            else:
                self.selected |= free
        elif key == "/":
            self.searching = True
        elif key == "enter":
            self.done = True
        elif key in ("q", "esc", "ctrl-d"):
            self.cancelled = True

    def render(self) -> Group:
        shown = self.shown()
        pages = max(1, -(-len(shown) // self.page_size))
        start = self.page * self.page_size
        variants = sum(len(p.variants) for p in self.chosen())
        head = Text.assemble(
            (self.title, "bold"),
            f"  {len(self.products)} products, {len(shown)} shown, ",
            (f"{len(self.selected)} selected ({variants} variants)", "bold green"),
            f"  page {self.page + 1}/{pages}",
        )
        search = Text.assemble(("search: ", "bold"), self.query, ("▏" if self.searching else ""))
        table = Table("", "title", "id", "status", "variants", "sku", "tags", expand=True, box=None)
        for i, p in enumerate(shown[start : start + self.page_size], start=start):
            mark = Text("linked" if p.id in self.linked else ("[x]" if p.id in self.selected else "[ ]"))
            skus = ", ".join(v.sku for v in p.variants if v.sku)
            style = "reverse" if i == self.cursor else ("dim" if p.id in self.linked else "")
            table.add_row(
                mark, p.title, p.id, p.status, str(len(p.variants)), skus[:30], ", ".join(p.tags)[:30], style=style
            )
        if not shown:
            table.add_row("", "(nothing matches the search)", "", "", "", "", "")
        keys = Text(
            "↑↓ move  ←→ page  space select  a all shown  / search  enter publish  q quit"
            if not self.searching
            else "type to search  enter keep  esc clear",
            style="dim",
        )
        parts: list[Text | Table] = [head, search, table, keys]
        if self.message:
            parts.append(Text(self.message, style="yellow"))
        return Group(*parts)


# -- the terminal ----------------------------------------------------------------------------------

_SEQUENCES = {
    "[A": "up",
    "[B": "down",
    "[C": "right",
    "[D": "left",
    "OA": "up",
    "OB": "down",
    "OC": "right",
    "OD": "left",
    "[5~": "pgup",
    "[6~": "pgdn",
    "[H": "home",
    "[F": "end",
    "OH": "home",
    "OF": "end",
    "[1~": "home",
    "[4~": "end",
}


class Keys:
    """Keys from a terminal file descriptor in cbreak mode: escape sequences become names."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def _more(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.fd, 64)
        if not data:
            raise EOFError
        self.pending += self.decoder.decode(data)
        return True

    def read(self) -> str:
        while not self.pending:
            self._more(None)
        ch, self.pending = self.pending[0], self.pending[1:]
        if ch == "\x1b":
            # A lone Esc and the start of an arrow key look alike: wait a moment for the rest.
            if not self.pending:
                self._more(0.05)
            for seq, name in _SEQUENCES.items():
                if self.pending.startswith(seq):
                    self.pending = self.pending[len(seq) :]
                    return name
            return "esc"
        return {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace", "\x04": "ctrl-d"}.get(ch, ch)


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys one at a time, no echo; Ctrl-C still interrupts. The terminal is restored after."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(products: Sequence[Product], linked: set[str], *, title: str) -> list[Product]:
    """Show the picker on the terminal until the user finishes (the chosen products) or quits ([])."""
    console = Console(file=sys.stdout, highlight=False)
    page = max(3, console.size.height - 8)
    picker = Picker(products, linked, page_size=page, title=title)
    fd = sys.stdin.fileno()
    keys = Keys(fd)
    with cbreak(fd), console.screen(hide_cursor=True) as screen:
        while not (picker.done or picker.cancelled):
            screen.update(picker.render())
            try:
                picker.handle(keys.read())
            except EOFError:
                picker.cancelled = True
    return [] if picker.cancelled else picker.chosen()
