"""Plot helpers shared by every chapter: embeddings coloured by label, image grids."""
from __future__ import annotations

import numpy as np


def plot_embedding(E, y=None, class_names=None, ax=None, title=None, s: float = 6, alpha: float = 0.8,
                   legend: bool = True, cmap=None):
    """Scatter a 2-D embedding ``E`` (n x 2), coloured by ``y``.

    Integer labels with ``class_names`` get one colour per class and a legend;
    any other ``y`` (a position along a manifold, say) gets a colour bar.
    """
    import matplotlib.pyplot as plt

    E = np.asarray(E.detach().cpu() if hasattr(E, "detach") else E)
    if E.ndim != 2 or E.shape[1] < 2:
        raise ValueError(f"E must have shape (n, 2) or more columns, got {E.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    if y is None:
        ax.scatter(E[:, 0], E[:, 1], s=s, alpha=alpha, color="tab:blue", linewidths=0)
    elif class_names:
        y = np.asarray(y)
        colours = plt.get_cmap(cmap or ("tab10" if len(class_names) <= 10 else "tab20"))
        for c, name in enumerate(class_names):
            mask = y == c
            if mask.any():
                ax.scatter(E[mask, 0], E[mask, 1], s=s, alpha=alpha, color=colours(c % colours.N),
                           label=name, linewidths=0)
        if legend:
            # Legend dots about 6 points wide whatever the plot's dot size (s is an area in points^2):
            # 70,000 dots of s = 0.5 would otherwise leave a legend of invisible dots.
            ax.legend(markerscale=max(2.5, 6.0 / np.sqrt(s)), fontsize="small", frameon=False, loc="center left",
                      bbox_to_anchor=(1.0, 0.5))
    else:
        points = ax.scatter(E[:, 0], E[:, 1], c=np.asarray(y), s=s, alpha=alpha, cmap=cmap or "viridis",
                            linewidths=0)
        plt.colorbar(points, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def image_grid(images, ncols: int = 10, titles=None, axes_size: float = 1.0, cmap: str = "gray", fig=None):
    """Show images (n x H x W, n x 1 x H x W, or n x H*W for square images) in a grid."""
    import matplotlib.pyplot as plt

    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"flat images must be square, got {images.shape[1]} pixels")
        images = images.reshape(len(images), side, side)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W), (n, 1, H, W) or (n, H*W), got {images.shape}")
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = fig or plt.figure(figsize=(ncols * axes_size, nrows * axes_size * (1.25 if titles is not None else 1.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    return fig
