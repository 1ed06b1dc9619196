"""ti.viz: the training curves have whole-epoch ticks and plain (offset-free) values, even for one epoch."""
import numpy as np
import pytest

import tinyinception as ti

ONE_EPOCH = [{"epoch": 1, "train_loss": 2.30412, "val_loss": 2.30447, "train_accuracy": 0.1, "val_accuracy": 0.12}]
THREE_EPOCHS = [{"epoch": e, "train_loss": 2.3041 - 1e-4 * e, "val_loss": 2.3046 - 2e-4 * e,
                 "train_accuracy": 0.1 * e, "val_accuracy": 0.1 * e + 0.01} for e in (1, 2, 3)]


def drawn(figure):
    """Draw the figure (tick labels and offset texts are decided at draw time)."""
    figure.canvas.draw()
    return figure


@pytest.mark.parametrize("history", [ONE_EPOCH, THREE_EPOCHS], ids=["one epoch", "three epochs"])
def test_curves_have_integer_epoch_ticks_and_no_offset(history):
    figure = drawn(ti.viz.curves_figure(history))
    try:
        for axis in figure.axes:
            low, high = axis.get_xlim()
            ticks = [t for t in axis.get_xticks() if low <= t <= high]
            assert ticks, "no epoch tick inside the axis"
            assert all(float(t).is_integer() for t in ticks), f"fractional epoch ticks: {ticks}"
            assert axis.yaxis.get_offset_text().get_text() == "", (
                f"y axis shows an offset {axis.yaxis.get_offset_text().get_text()!r}")
            labels = [label.get_text() for label in axis.get_yticklabels() if label.get_text()]
            assert labels and all("e" not in text.lower() for text in labels), labels
        epochs = [record["epoch"] for record in history]
        low, high = figure.axes[0].get_xlim()
        assert low < min(epochs) and high > max(epochs)
    finally:
        ti.viz.pyplot().close(figure)


def test_curves_loss_ticks_read_as_the_values():
    figure = drawn(ti.viz.curves_figure(ONE_EPOCH))
    try:
        loss_axis = figure.axes[0]
        values = [float(label.get_text().replace("\u2212", "-")) for label in loss_axis.get_yticklabels()
                  if label.get_text()]
        low, high = loss_axis.get_ylim()
        visible = [v for v, t in zip(values, loss_axis.get_yticks()) if low <= t <= high]
        assert visible and all(2.2 < v < 2.4 for v in visible), values   # 2.3041, not 0.0001 + offset 2.304
    finally:
        ti.viz.pyplot().close(figure)


def test_plot_curves_writes_the_png(tmp_path):
    path = ti.viz.plot_curves(ONE_EPOCH, tmp_path / "curves.png", title="one epoch")
    assert path == tmp_path / "curves.png" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="history is empty"):
        ti.viz.curves_figure([])


def test_predictions_figure_stays_open_with_one_axis_per_cell():
    images = np.random.default_rng(0).random((5, 3, 8, 8)).astype(np.float32)
    figure = ti.viz.predictions_figure(images, [0, 1, 2, 0, 1], [0, 1, 0, 0, 2], ["a", "b", "c"], columns=3)
    try:
        assert len(figure.axes) == 6
        titles = [axis.get_title() for axis in figure.axes[:5]]
        assert titles[2] == "a\n(c)" and titles[0] == "a"
        assert figure.axes[2].title.get_color() == "red"
    finally:
        ti.viz.pyplot().close(figure)
