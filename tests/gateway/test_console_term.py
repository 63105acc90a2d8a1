"""The console's line discipline, byte by byte: what each key does to the line, what it echoes,
and that whatever arrives (garbage included) never raises and leaves the screen matching the
line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.console_term import (
    MAX_LINE_CHARS,
    MAX_PENDING_BYTES,
    EditorEvent,
    EndOfInput,
    Interrupted,
    LineEditor,
    LineEntered,
    text_cols,
)
from tests.gateway.console_screen import Screen

PROMPT = "> "
UP, DOWN, RIGHT, LEFT = b"\x1b[A", b"\x1b[B", b"\x1b[C", b"\x1b[D"
HOME, END, DELETE = b"\x1b[H", b"\x1b[F", b"\x1b[3~"


def keys(data: bytes, editor: LineEditor | None = None,
         screen: Screen | None = None) -> list[EditorEvent]:  # fmt: skip
    """Feed `data` one byte at a time; after each event start the next line. Returns the
    events; the echo goes to `screen`."""
    editor = editor or LineEditor()
    screen = screen or Screen()
    if not editor.reading:
        screen.feed(editor.start(PROMPT))
    events: list[EditorEvent] = []
    for i in range(len(data)):
        echo, event = editor.feed(data[i : i + 1])
        screen.feed(echo)
        if event is not None:
            events.append(event)
            screen.feed(editor.start(PROMPT))
    return events


def line(data: bytes, editor: LineEditor | None = None) -> str:
    """The line `data` (Enter included) produces."""
    events = keys(data, editor)
    assert len(events) == 1, events
    assert isinstance(events[0], LineEntered), events
    return events[0].text


def test_cr_lf_and_crlf_each_end_one_line() -> None:
    assert keys(b"a\rb\nc\r\nd\r\x00e\r") == [LineEntered(t) for t in "abcde"]
    assert keys(b"\r\r\n\n") == [LineEntered("")] * 3  # CR, CR LF, LF: three Enters


def test_typing_echoes_the_text_and_enter_a_crlf() -> None:
    editor = LineEditor()
    assert editor.start("tipring> ") == b"tipring> "
    echo, event = editor.feed(b"status\r")
    assert (echo, event) == (b"status\r\n", LineEntered("status"))


def test_backspace_and_del_erase_before_the_cursor() -> None:
    screen = Screen()
    events = keys(b"stat\x08\x7fus", screen=screen)
    assert events == []
    assert screen.line == "> stus"
    assert line(b"stat\x08\x7fus\r") == "stus"
    assert line(b"\x08\x7fab\r") == "ab"  # nothing to erase: nothing happens


def test_arrows_move_the_cursor_for_insertion() -> None:
    assert line(b"ac" + LEFT + b"b\r") == "abc"
    assert line(b"ac\x1bOD" + b"b\r") == "abc"  # SS3 form (application cursor keys)
    assert line(b"ab" + LEFT + LEFT + RIGHT + b"X\r") == "aXb"
    assert line(b"b" + LEFT * 5 + b"a" + RIGHT * 5 + b"c\r") == "abc"  # clamped at both ends


def test_home_and_end_in_every_form() -> None:
    for home, end in ((HOME, END), (b"\x1b[1~", b"\x1b[4~"), (b"\x1b[7~", b"\x1b[8~"),
                      (b"\x1bOH", b"\x1bOF"), (b"\x01", b"\x05")):  # fmt: skip
        assert line(b"bc" + home + b"a" + end + b"d\r") == "abcd"


def test_delete_and_ctrl_d_erase_under_the_cursor() -> None:
    assert line(b"abc" + HOME + DELETE + b"\r") == "bc"
    assert line(b"abc" + LEFT + b"\x04\r") == "ab"
    assert line(b"abc" + DELETE + b"\r") == "abc"  # at the end: nothing under it


def test_ctrl_d_on_an_empty_line_is_end_of_input() -> None:
    assert keys(b"\x04") == [EndOfInput()]


def test_ctrl_c_abandons_the_line() -> None:
    editor = LineEditor()
    editor.start(PROMPT)
    echo, event = editor.feed(b"reboot\x03")
    assert event == Interrupted()
    assert echo.endswith(b"^C\r\n")
    assert keys(b"status\r", editor) == [LineEntered("status")]  # the next line starts empty


def test_ctrl_u_kill_line_and_ctrl_k_ctrl_w() -> None:
    screen = Screen()
    keys(b"config set" + LEFT * 4 + b"\x15", screen=screen)
    assert screen.line == ">  set"
    assert line(b"config set" + LEFT * 4 + b"\x15\r") == " set"
    assert line(b"config set" + LEFT * 4 + b"\x0b\r") == "config"
    assert line(b"config set key\x17\x17\r") == "config "
    assert line(b"abc\x15\r") == ""


def test_history_up_and_down() -> None:
    editor = LineEditor()
    for text in ("status", "lines", "calls 5"):
        editor.add_history(text)
    assert line(UP + b"\r", editor) == "calls 5"
    assert line(UP + UP + b"\r", editor) == "lines"
    assert line(UP * 9 + b"\r", editor) == "status"  # stops at the oldest
    assert line(UP + UP + DOWN + b"\r", editor) == "calls 5"
    assert line(b"draft" + UP + DOWN + b"\r", editor) == "draft"  # down past the newest: the draft
    assert line(b"\x1bOA\x10" + b"\x0e\r", editor) == "calls 5"  # SS3 up, Ctrl-P, Ctrl-N
    assert line(UP + b" 9\r", editor) == "calls 5 9"  # a recalled line can be edited


def test_history_skips_blank_lines_and_repeats_and_is_bounded() -> None:
    editor = LineEditor()
    for text in ("a", "a", " ", "", "b", *(f"x{i}" for i in range(100))):
        editor.add_history(text)
    history = editor.history
    assert history[-1] == "x99"
    assert "" not in history
    assert " " not in history
    assert len(history) == 50


def test_recalled_shorter_line_is_blanked_on_screen() -> None:
    editor, screen = LineEditor(), Screen()
    editor.add_history("ls")
    keys(b"a much longer line" + UP, editor, screen)
    assert screen.line == "> ls"
    assert screen.col == len("> ls")


def test_secret_line_echoes_nothing_and_recalls_nothing() -> None:
    editor = LineEditor()
    editor.add_history("status")
    editor.start("password: ", secret=True)
    echo, event = editor.feed(b"hunter22" + LEFT + UP + b"\x7f\r")
    assert echo == b"\r\n"
    assert event == LineEntered("hunter2")  # BS erased the last character; up recalled nothing


def test_utf8_multibyte_characters_split_across_reads() -> None:
    text = "é€😀日"
    assert line(text.encode() + b"\r") == text  # keys() feeds one byte at a time
    screen = Screen()
    keys("日本".encode() + b"\x7f", screen=screen)
    assert screen.line == "> 日"  # a wide character's two columns are erased
    assert screen.col == 4


def test_garbage_bytes_are_dropped() -> None:
    garbage = (b"\xff\xfe\x80\xbf"  # invalid leads, stray continuation bytes
               b"\xe2\x82a"  # a cut sequence: dropped, the ASCII after it kept
               b"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80"  # overlong, surrogate, past U+10FFFF
               b"\xc2\x9b"  # C1 CSI as UTF-8: a control, not text
               b"\x1b[15~\x1b[1;5C\x1b[?25l\x1b[200~"  # F5, Ctrl-Right, private, paste mode
               b"\x00\x07\x0f\x1c\x1f")  # fmt: skip
    assert line(garbage + b"b\r") == "ab"


def test_escape_then_an_ordinary_key_keeps_the_key() -> None:
    assert line(b"\x1bx\x1b\x1bOC\r") == "x"  # Alt-x is x; Esc Esc O C: Esc dropped, SS3 right


def test_an_overlong_escape_sequence_ends_as_garbage() -> None:
    assert line(b"\x1b[" + b"9" * 40 + b"Xy\r") == "9" * 25 + "Xy"  # 16 bytes swallowed


def test_a_line_stops_growing_at_the_limit_with_a_bell() -> None:
    editor = LineEditor()
    editor.start(PROMPT)
    echo, _ = editor.feed(b"x" * (MAX_LINE_CHARS + 5))
    assert echo.endswith(b"\x07" * 5)
    assert editor.feed(b"\r")[1] == LineEntered("x" * MAX_LINE_CHARS)


def test_type_ahead_waits_for_the_next_line() -> None:
    editor = LineEditor()
    editor.start(PROMPT)
    assert editor.feed(b"status\rlines\r") == (b"status\r\n", LineEntered("status"))
    assert editor.has_pending
    assert editor.feed(b"") == (b"", None)
    assert editor.start(PROMPT) == PROMPT.encode()
    assert editor.feed(b"") == (b"lines\r\n", LineEntered("lines"))


def test_type_ahead_is_bounded_and_can_be_discarded() -> None:
    editor = LineEditor()
    editor.feed(b"x" * (MAX_PENDING_BYTES * 3))
    editor.start(PROMPT)
    echo, event = editor.feed(b"")
    assert event is None
    assert echo.count(b"x") == MAX_LINE_CHARS
    editor.feed(b"\r")
    editor.feed(b"stray\r")
    editor.discard_pending()
    editor.start(PROMPT)
    assert editor.feed(b"ok\r")[1] == LineEntered("ok")


def test_tab_completes_command_names() -> None:
    names = ["call", "calls", "config", "color", "status"]

    def complete(prefix: str) -> list[str]:
        return [n for n in names if n.startswith(prefix)]

    assert line(b"st\t\r", LineEditor(complete)) == "status "
    assert line(b"ca\t\r", LineEditor(complete)) == "call"  # the common part
    screen = Screen()
    keys(b"co\t", LineEditor(complete), screen)
    assert "".join(screen.rows[1]) == "color  config"
    assert screen.line == "> co"
    assert line(b"x\t\r", LineEditor(complete)) == "x"  # nothing matches: a bell
    assert line(b"status li\t\r", LineEditor(complete)) == "status li"  # arguments: no


def test_ctrl_l_redraws_prompt_and_line() -> None:
    screen = Screen()
    keys(b"abc" + LEFT + b"\x0c", screen=screen)
    assert screen.line == "> abc"
    assert screen.col == 4


EDIT_KEYS = [b"a", b"b", b" ", "é".encode(), "日".encode(), b"\x08", b"\x7f", LEFT, RIGHT,
             HOME, END, DELETE, b"\x1bOD", b"\x15", b"\x0b", b"\x17", UP, DOWN, b"\x01", b"\x05",
             b"\x04"]  # fmt: skip


@given(st.lists(st.sampled_from(EDIT_KEYS), max_size=60))
def test_the_screen_always_shows_the_line(presses: list[bytes]) -> None:
    editor, screen = LineEditor(), Screen()
    editor.add_history("config show")
    editor.add_history("é日 x")
    events = keys(b"x" + b"".join(presses) + END, editor, screen)
    assert all(event == EndOfInput() for event in events)  # Ctrl-D on an emptied line
    shown, col = screen.line, screen.col
    _echo, event = editor.feed(b"\r")
    assert isinstance(event, LineEntered)
    assert (PROMPT + event.text).rstrip() == shown
    assert col == text_cols(PROMPT + event.text)  # End put the cursor after the last character


@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20))
def test_any_bytes_in_any_split_never_raise(data: bytes, cuts: list[int]) -> None:
    editor = LineEditor(lambda prefix: ["status", "stop"])
    editor.add_history("status")
    editor.start(PROMPT)
    pos = 0
    for size in [*cuts, len(data)]:
        echo, event = editor.feed(data[pos : pos + size])
        echo.decode("utf-8")  # always whole characters
        if event is not None:
            editor.start(PROMPT, secret=pos % 2 == 1)
        pos += size
    echo, event = editor.feed(b"\x15ok\r")
    while event is not None and event != LineEntered("ok"):
        editor.start(PROMPT)
        echo, event = editor.feed(b"\x15ok\r")
    assert event == LineEntered("ok")
