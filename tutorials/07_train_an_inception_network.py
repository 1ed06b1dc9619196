"""Tutorial 7: train a small GoogLeNet for real, and see what its auxiliary classifiers do.

Run it:  python tutorials/07_train_an_inception_network.py          (about 2 minutes on 2 cores)
         python tutorials/07_train_an_inception_network.py --quick  (seconds: tiny data, for CI)

What you will see
  1. the data: Shapes10, ten classes of procedurally drawn shapes at many scales (no download)
  2. the model: GoogLeNet with the 32x32 stem and an eighth of the paper's channels
  3. one training run with ti.train.fit: progress bars, metrics.jsonl, curves.png, last.ckpt / best.ckpt
  4. a few test images with the network's predictions (predictions.png)
  5. the auxiliary classifiers: the same run again, same seed and same number of steps, without them
Everything is written under ./runs/tutorial07/ (relative to where you run it; --out to change it).
"""
import argparse
import os
import time

import numpy as np

import tinyinception as ti
from tinyinception.data import DataLoader, Shapes10

FULL = dict(train_size=12000, test_size=1000, epochs=2, batch_size=64, width=0.125)
QUICK = dict(train_size=128, test_size=64, epochs=1, batch_size=32, width=0.125)
SEED = 0


def section(title):
    print(f"\n{'=' * 72}\n{title}\n{'=' * 72}")


def step_1_data(settings):
    section("1. The data: Shapes10")
    train_set = Shapes10("train", size=settings["train_size"], seed=SEED)
    test_set = Shapes10("test", size=settings["test_size"], seed=SEED)
    print(f"{len(train_set)} training and {len(test_set)} test images of shape {train_set.image_shape}")
    print("classes:", ", ".join(train_set.classes))
    print("Train and test are independent random draws: a test image is never a copy of a training one.")
    return train_set, test_set


def make_model(settings, aux_logits):
    """GoogLeNet for 32x32 inputs. The seed is set first, so both experiments start from the same draws."""
    ti.manual_seed(SEED)
    return ti.models.googlenet(num_classes=10, width=settings["width"], small_input=True, aux_logits=aux_logits)


def train(model, train_set, test_set, settings, out_dir, progress=True):
    """Adam, warm-up then cosine decay per step; returns ti.train.fit's result.

    Why Adam at 1e-3 and not SGD at 0.1: GoogLeNet's weights start tiny (torchvision's truncated normal, std
    0.01) and BatchNorm makes each layer blind to its weights' scale, so a gradient step is large *relative* to
    those weights; large SGD learning rates then kept this network at chance level on Shapes10 in our runs.
    """
    train_loader = DataLoader(train_set, settings["batch_size"], shuffle=True, drop_last=True, seed=SEED)
    test_loader = DataLoader(test_set, 256)
    optimizer = ti.optim.Adam(model.parameters(), lr=1e-3)
    steps = settings["epochs"] * len(train_loader)
    warmup = max(1, steps // 20)
    scheduler = ti.optim.lr_scheduler.SequentialLR(optimizer, [
        ti.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
        ti.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup)], milestones=[warmup])
    return ti.train.fit(model, train_loader, test_loader, optimizer, settings["epochs"], scheduler=scheduler,
                        scheduler_interval="step", out_dir=out_dir, progress=progress)


def step_2_and_3_train(settings, train_set, test_set, out_root):
    section("2-3. GoogLeNet, trained with ti.train.fit")
    model = make_model(settings, aux_logits=True)
    print(f"GoogLeNet at width {settings['width']}: {model.num_parameters():,} parameters (the two auxiliary "
          f"heads included)")
    print(f"The auxiliary loss weight ti.train.fit picks for it: {ti.train.aux_weight_for(model)} "
          f"(Szegedy et al. 2014, section 5)")
    started = time.perf_counter()
    result = train(model, train_set, test_set, settings, os.path.join(out_root, "with_aux"))
    seconds = time.perf_counter() - started
    last = result.history[-1]
    print(f"\n{len(result.history)} epochs, {result.global_step} steps in {seconds:.0f} s: "
          f"test accuracy {last['val_accuracy']:.3f}")
    print(f"metrics (one JSON object per epoch): {result.metrics_path}")
    print(f"loss and accuracy curves:            {result.curves_path}")
    print(f"checkpoints:                         {result.last_checkpoint}, {result.best_checkpoint}")
    print("To continue later: ti.train.fit(..., epochs=more, resume=result.last_checkpoint) with fresh objects\n"
          "built the same way carries on exactly where this run stopped.")
    return model, result, seconds


def step_4_predictions(model, test_set, out_root):
    section("4. Some test images and what the network says they are")
    images, labels = test_set.get_batch(np.arange(min(32, len(test_set))))
    predictions = ti.train.predict(model, images)
    path = ti.viz.plot_predictions(images, labels, predictions, test_set.classes,
                                   os.path.join(out_root, "predictions.png"))
    right = int((predictions == labels).sum())
    print(f"{right} of {len(labels)} right; titles in red show the prediction and (the true class): {path}")
    confused = [(test_set.classes[t], test_set.classes[p]) for t, p in zip(labels, predictions) if t != p]
    if confused:
        print("mistakes (true -> predicted):", ", ".join(f"{t} -> {p}" for t, p in confused[:6]))


def step_5_auxiliary_classifiers(settings, train_set, test_set, out_root, with_aux):
    section("5. What do the auxiliary classifiers do?")
    print("GoogLeNet attaches two small classifiers to the outputs of inception4a and inception4d. In training,\n"
          "their losses are added to the main loss with weight 0.3 each; at test time they are thrown away.\n"
          "The paper's motivation: a gradient signal injected half-way up a deep network, and some\n"
          "regularisation. Here we train the same network, from the same seed, on the same batches for the same\n"
          "number of steps, once without them (aux_logits=False). Note: the heads draw random numbers when\n"
          "they are built, so the two networks' other layers start from different draws; one seed each is a\n"
          "small experiment -- differences of a point or two are within run-to-run noise.")
    model = make_model(settings, aux_logits=False)
    started = time.perf_counter()
    without = train(model, train_set, test_set, settings, os.path.join(out_root, "without_aux"))
    seconds = time.perf_counter() - started
    results = [("with aux heads (weight 0.3)", with_aux[0], with_aux[1]), ("without", without, seconds)]
    print(f"\n{'':30s} {'test accuracy':>14s} {'train loss':>11s} {'seconds':>8s}")
    for name, result, secs in results:
        last = result.history[-1]
        print(f"{name:30s} {last['val_accuracy']:14.3f} {last['train_loss']:11.3f} {secs:8.0f}")
    gap = with_aux[0].history[-1]["val_accuracy"] - without.history[-1]["val_accuracy"]
    print(f"\nDifference (with - without): {gap:+.3f}. The heads also cost compute: compare the seconds.")
    if abs(gap) < 0.02:
        print("No clear difference in this run.")
    else:
        print(f"In this run the network {'with' if gap > 0 else 'without'} the heads did better, but one seed per "
              "arm cannot separate that from run-to-run noise: repeat with other seeds before concluding.")
    print("For context: the Inception-v3 paper (section 4) found that auxiliary heads did not speed up early\n"
          "training and acted mainly as a regulariser near its end; with BatchNorm in every unit the gradient\n"
          "reaches the lower layers well without them.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data and one epoch: seconds, for CI")
    parser.add_argument("--out", default=os.path.join("runs", "tutorial07"), help="where everything is written")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    if args.quick:
        # Tiny batches: the NumPy kernels beat Numba's parallel ones, whose thread start-up per call dominates.
        ti.set_kernels("numpy")
    out_root = args.out
    os.makedirs(out_root, exist_ok=True)
    train_set, test_set = step_1_data(settings)
    model, result, seconds = step_2_and_3_train(settings, train_set, test_set, out_root)
    step_4_predictions(model, test_set, out_root)
    step_5_auxiliary_classifiers(settings, train_set, test_set, out_root, (result, seconds))


if __name__ == "__main__":
    main()
