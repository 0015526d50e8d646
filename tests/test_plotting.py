"""course_lib.plotting: the legend of a class-coloured map stays readable."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.plotting import plot_embedding  # noqa: E402


@pytest.mark.parametrize("s", [0.5, 6.0])
def test_legend_dots_are_visible_for_any_dot_size(s):
    fig, ax = plt.subplots()
    E = np.random.default_rng(0).normal(size=(90, 2))
    plot_embedding(E, np.arange(90) % 3, ["a", "b", "c"], ax=ax, s=s)
    handles = ax.get_legend().legend_handles
    assert [h.get_label() for h in handles] == ["a", "b", "c"]
    # At least 6 points across (an area of 36 points^2), as large as a 2.5x-scaled dot of s = 6.
    assert all(h.get_sizes()[0] >= 36.0 - 1e-9 for h in handles)
    plt.close(fig)
