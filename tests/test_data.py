"""Loaders: shapes, labels, and a clear error when a data set is missing."""
import numpy as np
import pytest

from course_lib import data


def test_sklearn_sets_have_labels_and_names():
    d = data.load_digits()
    assert d.X.shape == (1797, 64) and d.X.dtype == np.float32
    assert d.class_names == [str(i) for i in range(10)] and set(d.y) == set(range(10))
    X, y = data.load_iris()  # unpacking works
    assert X.shape == (150, 4) and len(y) == 150
    roll = data.load_swiss_roll(300, seed=3)
    assert roll.X.shape == (300, 3) and roll.y.shape == (300,)
    assert data.load_s_curve(200).X.shape == (200, 3)


def test_pbmc68k_reduced():
    d = data.load_pbmc68k_reduced()
    assert d.X.shape == (700, 765)
    assert d.X.min() >= 0  # log-normalised counts
    assert len(d.class_names) == 10 and "CD14+ Monocyte" in d.class_names
    assert d.y.min() >= 0 and d.y.max() < 10
    assert len(d.feature_names) == 765 and "CD79A" in d.feature_names  # a B-cell marker
    scaled = data.load_pbmc68k_reduced("scaled")
    assert scaled.X.shape == (700, 765)
    np.testing.assert_allclose(scaled.X.mean(axis=0), 0, atol=0.15)
    with pytest.raises(ValueError, match="layer"):
        data.load_pbmc68k_reduced("raw")


def test_fashion_mnist_subset_and_flatten():
    d = data.load_fashion_mnist("test", n=50, flatten=True, seed=1)
    assert d.X.shape == (50, 784) and 0.0 <= d.X.min() and d.X.max() <= 1.0
    assert d.class_names[9] == "Ankle boot"
    images = data.load_fashion_mnist("test", n=50, seed=1)
    assert images.X.shape == (50, 1, 28, 28)
    np.testing.assert_array_equal(images.y, d.y)
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist("validation")
    with pytest.raises(ValueError, match="n must be"):
        data.load_fashion_mnist("test", n=0)


def test_missing_data_set_says_how_to_get_it(monkeypatch, tmp_path):
    # No system copy, an empty cache and no network: the error must name the set.
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    monkeypatch.setattr(data, "_download", no_network)
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(data.DataNotFoundError, match="Fashion-MNIST.*apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist()
    with pytest.raises(data.DataNotFoundError, match="pbmc68k_reduced.*make data"):
        data.load_pbmc68k_reduced()


def test_course_data_folder_is_searched_first(monkeypatch, tmp_path):
    import shutil

    source = data._pbmc_path()
    shutil.copy(source, tmp_path / data.PBMC_FILE)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert data._pbmc_path() == tmp_path / data.PBMC_FILE
