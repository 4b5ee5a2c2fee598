"""Figures that show samples: every pixel of a sample must reach the saved picture."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lgtutorial.microstructure import labels_to_one_hot  # noqa: E402
from lgtutorial.plotting import full_resolution_dpi, show_microstructures  # noqa: E402


def _saved(figure, dpi) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    return plt.imread(buffer)


def test_one_pixel_laths_survive_at_full_resolution_dpi_and_not_at_100():
    # vertical laths one pixel wide, one pixel apart: a 400 x 512 sample in a 3.2-inch panel
    labels = torch.zeros(400, 512, dtype=torch.int64)
    labels[:, ::2] = 1
    axes = show_microstructures([labels_to_one_hot(labels)[0]] * 3, ["a", "b", "c"], size=3.2)
    figure = axes[0].figure
    dpi = full_resolution_dpi(figure)
    assert 160 < dpi < 400
    for chosen, resolved in ((dpi, True), (100, False)):
        image = _saved(figure, chosen)[..., :3].mean(-1)
        row = image[image.shape[0] // 2]
        # inside the first panel: count the alternations of dark and light along the middle row
        box = axes[0].get_position()
        left, right = int(box.x0 * image.shape[1]) + 3, int(box.x1 * image.shape[1]) - 3
        levels = row[left:right]
        contrast = levels.max() - levels.min()
        changes = int((np.abs(np.diff(levels)) > 0.5 * contrast).sum()) if contrast > 0.2 else 0
        # 511 changes between the 512 laths: all but those in the trimmed margins at full resolution
        assert (changes >= 490) if resolved else (changes < 256), (chosen, changes)
    plt.close(figure)
