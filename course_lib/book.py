"""Hand numbers computed in a chapter to its text: the book's prose never types a result by hand.

In a chapter, ``glue("ch01_variance_2", ratio)`` records the value, and the Markdown
quotes it with ``{glue:text}`ch01_variance_2:.0%```. A string (a ranking written out, say)
is glued as Markdown and quoted with ``{glue:md}`name```. MyST-NB inserts the executed
value when the book is built. Outside a book build (on Colab, say, where MyST-NB is
not installed) ``glue`` only returns the value, so every chapter runs anywhere.
"""
from __future__ import annotations


def glue(name: str, value, display: bool = False):
    """Record ``value`` under ``name`` for the book's ``{glue:}`` roles and return it.

    Like MyST-NB's ``glue``, it shows the value in the cell's output only when ``display`` is true.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string (letters, digits, _), got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:   # not building the book: nothing to record
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:   # NumPy / torch scalar -> float, int
        value = value.item()
    if isinstance(value, str):   # shown as text, not as a Python string literal with quotes
        from IPython.display import Markdown
        myst_glue(name, Markdown(value), display=display)
    else:
        myst_glue(name, value, display=display)
    return value
