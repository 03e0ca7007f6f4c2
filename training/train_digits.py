"""Train the shipped ``digits`` reference network.

Data: the UCI "Optical Recognition of Handwritten Digits" set as bundled with
scikit-learn (:func:`sklearn.datasets.load_digits`; 1797 images of 8x8
pixels, values 0..16; no download). Network: 64 -> 32 (relu) -> 10 (linear
logits), trained with :class:`sklearn.neural_network.MLPClassifier` on a
stratified 70/30 split; the 30 % held-out part is stored in the file.

Run from the repository root::

    python -m training.train_digits

Everything is seeded, so two runs give the same weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # also allow ``python training/train_digits.py``
    sys.path.insert(0, str(REPO_ROOT))

from plc_anna.device.network import (  # noqa: E402
    Network,
    digital_forward,
    network_from_arrays,
    save_network,
    task_metric,
)

DEFAULT_OUTPUT = REPO_ROOT / "plc_anna" / "networks" / "digits.npz"
SEED = 0
TEST_FRACTION = 0.3
HIDDEN = 32
#: L2 penalty. Small: accuracy is flat for 1e-4..1, and the weight spread
#: (max |w| over rms |w|, what matters when the largest |w| of a layer is
#: mapped to the maximum conductance) does not improve with larger values.
ALPHA = 1e-2
#: Full scale of a pixel. Inputs are divided by this single constant for
#: training instead of being standardized per pixel: per-pixel scaling divides
#: by the tiny spread of nearly-always-blank border pixels, which after
#: folding gives a few first-layer weights ~10x larger than the rest.
PIXEL_SCALE = 16.0


def train(seed: int = SEED) -> tuple[Network, MLPClassifier]:
    """Train the classifier and return it as a :class:`Network` on raw pixels.

    Parameters
    ----------
    seed : int, optional
        Seed of the train/test split and of the weight initialisation.

    Returns
    -------
    network : Network
        The folded network (takes raw pixel values 0..16) with the held-out
        split as ``X`` (float pixels) and ``y`` (int labels).
    classifier : MLPClassifier
        The fitted scikit-learn model (on pixels / 16), for cross-checks.
    """
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_FRACTION, stratify=y, random_state=seed
    )
    clf = MLPClassifier(
        hidden_layer_sizes=(HIDDEN,),
        activation="relu",
        alpha=ALPHA,
        max_iter=2000,
        random_state=seed,
    )
    # One BLAS thread: the result then does not depend on the core count.
    with threadpool_limits(1):
        clf.fit(X_train / PIXEL_SCALE, y_train)

    # Fold the input scaling into layer 0: W (x / s) + b = (W / s) x + b.
    # scikit-learn stores coefs as (n_in, n_out); the file wants (n_out, n_in).
    weights = [clf.coefs_[0].T / PIXEL_SCALE, clf.coefs_[1].T]
    biases = [clf.intercepts_[0], clf.intercepts_[1]]
    network = network_from_arrays(
        name="digits",
        task="classification",
        weights=weights,
        biases=biases,
        activations=["relu", "linear"],
        X=X_test.astype(float),
        y=y_test.astype(np.int64),
        output_names=tuple(f"digit{k}" for k in range(10)),
        output_unit="",
        description=(
            "Handwritten digit classifier (8x8 pixels, values 0..16) trained on the UCI "
            "optical digits data bundled with scikit-learn (sklearn.datasets.load_digits)."
        ),
    )
    return network, clf


def main(argv: list[str] | None = None) -> int:
    """Train, check, report and save the network; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the .npz (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)

    network, clf = train()
    logits = digital_forward(network, network.X)
    # The folded network must reproduce the scikit-learn model exactly
    # (up to float round-off): same predicted class for every held-out image.
    reference = clf.predict(network.X / PIXEL_SCALE)
    if not np.array_equal(np.argmax(logits, axis=1), reference):
        raise RuntimeError("folded network disagrees with the trained MLPClassifier")
    accuracy = task_metric(network, logits, network.y)

    save_network(network, args.output)
    print(f"digits: trained {clf.n_iter_} epochs, held-out n={len(network.y)}")
    for i, layer in enumerate(network.layers):
        print(f"  layer{i}: {layer.n_in} -> {layer.n_out} {layer.activation:6s} "
              f"max|w|={np.max(np.abs(layer.weights)):.4f}")
    print(f"  digital held-out accuracy = {accuracy:.4f}")
    print(f"  wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
