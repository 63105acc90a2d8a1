"""`Screen`: the little of a VT100 the console's line editing relies on (printable text, CR, LF,
BS, BEL), to check that what the editor echoes leaves on screen what it holds in its line."""

from __future__ import annotations

from gateway.console_term import char_cols


class Screen:
    def __init__(self) -> None:
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: bytes) -> None:
        for ch in data.decode("utf-8"):  # the editor only ever echoes whole characters
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                if self.row == len(self.rows):
                    self.rows.append([])
            elif ch == "\b":
                self.col = max(self.col - 1, 0)
            elif ch == "\x07":
                continue
            else:
                self._put(ch)

    def _put(self, ch: str) -> None:
        cells = self.rows[self.row]
        width = char_cols(ch)
        cells.extend(" " * (self.col + width - len(cells)))
        if width == 0:  # a combining mark joins the character before it
            cells[self.col - 1] += ch
            return
        cells[self.col] = ch
        if width == 2:
            cells[self.col + 1] = ""  # the right half of a wide character
        self.col += width

    @property
    def line(self) -> str:
        """The cursor's row, trailing blanks dropped."""
        return "".join(self.rows[self.row]).rstrip()
