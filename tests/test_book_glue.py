"""course_lib.book.glue: works with and without MyST-NB, writes plain numbers and Markdown text."""
import builtins

import numpy as np
import pytest

from course_lib.book import glue


def test_glue_returns_the_value_and_converts_numpy_scalars(monkeypatch):
    recorded = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: recorded.update({name: (value, display)}))
    assert glue("ratio", np.float64(0.25)) == 0.25
    value, display = recorded["ratio"]
    assert type(value) is float and display is False     # {glue:text}`ratio:.0%` needs a plain float
    glue("ranking", "gains, then momentum")
    assert recorded["ranking"][0].data == "gains, then momentum"   # Markdown, shown without quotes


def test_glue_without_myst_nb_is_a_no_op(monkeypatch):
    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    assert glue("x", 3) == 3


def test_glue_rejects_names_that_are_not_identifiers():
    with pytest.raises(ValueError, match="name"):
        glue("two words", 1)
