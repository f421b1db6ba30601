"""Showing values from data literally in the terminal: never as Rich markup, never as terminal control codes.

Anything that comes from data (account names, ids, owners, file and column names, values quoted in a problem or
an error message, a model card read back from disk) can hold text that Rich or the terminal would act on:

- Rich markup such as ``[/red]`` or ``[link=…]``: Rich parses it, and an unmatched closing tag raises
  ``MarkupError``, so one odd account name would crash the command.
- Control characters: ``ESC`` (``\\x1b``) starts ANSI sequences that recolour the screen, retitle the window or
  hide a fake hyperlink (``\\x1b]8;;…``); carriage return and backspace overwrite what was printed before; C1
  controls (U+0080–U+009F) are the 8-bit forms of the same sequences.
- Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the invisible direction marks
  (U+061C, U+200E, U+200F) reorder what is shown ("Trojan Source"); the line and paragraph separators
  (U+2028, U+2029) break a line where the reader sees none.

:func:`visible` replaces each such character with an escape a person can read (``\\x1b``, ``\\u202e``);
:func:`safe_text` wraps the result in a :class:`rich.text.Text`, which Rich never parses for markup or emoji
codes, and :func:`safe_markup` escapes it for the rare place that must build a markup string. :func:`literal`
is :func:`safe_text` with the console's highlighting, for text that used to be printed as a plain string.

Newlines and tabs are escaped too (``\\n``, ``\\t``) unless ``multiline=True`` keeps the newlines. Inside a table
cell or a one-line message a newline would forge a line that is not there (a fake row, or a fake "the input meets
the contract"), and a tab shows as blank space of varying width; seeing ``\\n`` tells the user the value really
holds one, which is almost always a quoting mistake in the file. Error messages may span lines (a YAML error
points at its line), so they are shown with ``multiline=True``. A backslash already in the data is left as it is,
so Windows paths read as usual; the price is that a literal ``\\x1b`` typed into the data looks like an escaped
``ESC``, which is harmless.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape
from rich.style import Style
from rich.text import Text

__all__ = ["literal", "safe_markup", "safe_text", "visible"]

# C0 controls (tab and newline included: see the module docstring), DEL, C1 controls, the Arabic letter mark,
# the left-to-right and right-to-left marks, the line and paragraph separators, bidi embeddings and overrides,
# and bidi isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(value: object, *, multiline: bool = False) -> str:
    """``str(value)`` with every control, bidi and line-separator character replaced by a visible escape.

    Parameters
    ----------
    value
        Anything from data; ``None`` becomes the empty string.
    multiline
        Keep newlines (``\\n``) as line breaks; every other control character is still escaped.

    Returns
    -------
    str
        The text with ``ESC`` shown as ``\\x1b``, U+202E as ``\\u202e``, a tab as ``\\t`` and so on. Ordinary
        text, accents, CJK and emoji included, comes back unchanged.

    Edge cases
    ----------
    Square brackets are left alone: this is plain text, not markup (see :func:`safe_text` and :func:`safe_markup`).
    A backslash already in the value is kept as it is.

    Examples
    --------
    >>> visible("\\x1b[31mEvil\\x1b[0m")
    '\\\\x1b[31mEvil\\\\x1b[0m'
    >>> print(visible("\\u202eevil.exe"))
    \\u202eevil.exe
    >>> print(visible("two\\nlines\\tand a tab"))
    two\\nlines\\tand a tab
    >>> print(visible("two\\nlines\\r", multiline=True))
    two
    lines\\r
    >>> visible("Zoë Café 株式会社 [bold]"), visible(None), visible(42)
    ('Zoë Café 株式会社 [bold]', '', '42')
    """
    text = "" if value is None else str(value)
    return (_UNSAFE_KEEPING_NEWLINES if multiline else _UNSAFE).sub(_escape_char, text)


def safe_text(value: object, style: str | Style = "", *, multiline: bool = False) -> Text:
    """A :class:`rich.text.Text` showing ``value`` literally: no markup, no emoji codes, no control characters.

    Pass it wherever Rich accepts a renderable (a table cell, a title, ``console.print``); a ``str`` in those
    places is parsed as markup, a ``Text`` never is. Combine several with :meth:`rich.text.Text.assemble`.

    Parameters
    ----------
    value
        Anything from data; ``None`` becomes an empty text.
    style
        The Rich style of the whole text (``"bold red"``).
    multiline
        Keep newlines as line breaks (see :func:`visible`).

    Returns
    -------
    Text
        The text as :func:`visible` shows it, styled.

    Examples
    --------
    >>> from rich.console import Console
    >>> console = Console(width=60, color_system=None)
    >>> console.print(safe_text("[/red]Evil[link=http://x] :smile:"))
    [/red]Evil[link=http://x] :smile:
    >>> console.print(Text.assemble(("error: ", "red"), safe_text("bad\\x1b]8;;http://x\\x1b\\\\")))
    error: bad\\x1b]8;;http://x\\x1b\\
    """
    return Text(visible(value, multiline=multiline), style=style)


def safe_markup(value: object, *, multiline: bool = False) -> str:
    """``value`` cleaned as by :func:`visible`, then escaped to sit inside a Rich markup string.

    For an f-string that Rich parses: ``console.print(f"[green]{safe_markup(folder)}: fine[/green]")``.

    Parameters
    ----------
    value
        Anything from data; ``None`` becomes the empty string.
    multiline
        Keep newlines as line breaks (see :func:`visible`).

    Returns
    -------
    str
        Markup that shows ``value`` literally: every ``[`` that could open a tag is escaped, and a trailing
        backslash is doubled so it cannot escape the tag after it.

    Edge cases
    ----------
    Markup escaping does not cover emoji codes: printed with emoji on (Rich's default), a value holding
    ``:smile:`` shows an emoji. Prefer :func:`safe_text` (with :meth:`rich.text.Text.assemble`), which shows it
    as typed.

    Examples
    --------
    >>> safe_markup("[/link]")
    '\\\\[/link]'
    >>> from rich.console import Console
    >>> console = Console(width=60, color_system=None)
    >>> console.print(f"[red]{safe_markup('a[/red] b[bold]c' + chr(92))}[/red] ok")
    a[/red] b[bold]c\\ ok
    """
    return escape(visible(value, multiline=multiline))


def literal(console: Console, value: object, style: str | Style = "", *, multiline: bool = False) -> Text:
    """What ``console.print(str(value))`` would show, but literal: highlighted as usual, never parsed.

    Numbers, paths and quoted strings keep the colours the console's highlighter gives them (as when the message
    was an f-string), while markup and emoji codes stay as typed and control characters are escaped.

    Parameters
    ----------
    console
        The console the text is printed on (its highlighter and whether it highlights).
    value
        Anything from data, usually a message; ``None`` becomes an empty text.
    style
        The Rich style of the whole text.
    multiline
        Keep newlines as line breaks, for a message that may span lines (an error quoting a YAML parser's
        message); see :func:`visible`.

    Returns
    -------
    Text
        The cleaned text with the console's highlighting applied, and ``style`` laid over it as a markup tag
        around the whole message would be.

    Examples
    --------
    >>> from rich.console import Console
    >>> console = Console(width=60, color_system=None)
    >>> console.print(Text.assemble(("note: ", "yellow"), literal(console, "12 rows [/yellow] :x:\\x07")))
    note: 12 rows [/yellow] :x:\\x07
    """
    text = console.render_str(visible(value, multiline=multiline), markup=False, emoji=False)
    # render_str drops the base style when it highlights: laid over the highlighting, as a markup tag would be
    if style:
        text.stylize(style)
    return text


#: What a spreadsheet reads as the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting like a formula gets a leading apostrophe (OWASP's
    advice against CSV injection); other values pass unchanged.

    >>> spreadsheet_cell("=HYPERLINK(1)"), spreadsheet_cell("Acme"), spreadsheet_cell(3)
    ("'=HYPERLINK(1)", 'Acme', 3)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
