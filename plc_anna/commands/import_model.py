"""``plc-anna import MODEL --out NET.npz``: your own network from an ONNX model, checked against ONNX Runtime.

A thin click layer over :mod:`plc_anna.importers.onnx`: read the model, take the held-out data
(``--data``, or inputs drawn in ``--input-range``), compare the imported network with ONNX Runtime on
that data (the largest difference is printed; above ``--tolerance`` the command fails and writes
nothing), then save the network file (``docs/network-format.md``).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

#: Rows drawn when the inputs' range is given instead of data.
DRAWN_ROWS = 1024


@click.command("import", short_help="A network from an ONNX model, checked against ONNX Runtime.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The network file to write.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="Held-out data: .npz with X (and y) or .csv (inputs, then targets). The DAC/ADC ranges come "
                   "from it; without targets, the model's own outputs are the targets.")
@click.option("--input-range", type=click.FloatRange(min=0.0, min_open=True), metavar="R",
              help="Without --data: draw inputs uniformly in [-R, R] (seeded) for the ranges and the check.")
@click.option("--task", type=click.Choice(["regression", "classification"]), default="regression", show_default=True,
              help="classification: the outputs are logits, the metric is the accuracy of their argmax.")
@click.option("--name", help="The network's name [default: the model file's stem].")
@click.option("--output-unit", default="", help="Engineering unit of the outputs, e.g. degC.")
@click.option("--tolerance", type=click.FloatRange(min=0.0), default=1e-5, show_default=True,
              help="Largest difference from ONNX Runtime allowed, relative to its largest output.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of drawn inputs.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def import_model(model: str, out_path: str, data_path: str | None, input_range: float | None, task: str,
                 name: str | None, output_unit: str, tolerance: float, seed: int, force: bool) -> None:
    """Import MODEL (ONNX: Gemm, MatMul+Add, Relu, Tanh, Sigmoid, BatchNormalization, Identity, Flatten) as a
    plc-anna network, check it against ONNX Runtime and write it to --out."""
    from plc_anna.device.network import save_network
    from plc_anna.importers.data import load_data
    from plc_anna.importers.onnx import MissingExtra, check_against_runtime, import_onnx, input_features

    if (data_path is None) == (input_range is None):
        raise click.UsageError("give --data FILE (your process's inputs; the ranges come from them) or "
                               "--input-range R (inputs drawn in [-R, R]), one of them")
    if Path(out_path).exists() and not force:
        raise click.ClickException(f"{out_path} exists: give --force to overwrite it")
    try:
        n_in = input_features(model)
        if data_path is not None:
            X, y = load_data(data_path, n_in)
        else:
            X, y = np.random.default_rng(seed).uniform(-input_range, input_range, size=(DRAWN_ROWS, n_in)), None
        network = import_onnx(model, name=name, task=task, X=X, y=y, output_unit=output_unit)
        check = check_against_runtime(model, network, X, tolerance)
    except (MissingExtra, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    shapes = ", ".join(f"{layer.n_in} -> {layer.n_out} ({layer.activation})" for layer in network.layers)
    click.echo(f"{model}: {len(network.layers)} layer(s): {shapes}")
    source = f"{data_path}" if data_path else f"{len(X)} inputs drawn in [-{input_range:g}, {input_range:g}]"
    click.echo(f"against ONNX Runtime on {check.samples} samples ({source}): max abs difference "
               f"{check.max_abs_difference:.3g}, relative {check.relative_difference:.3g} (tolerance {tolerance:g})")
    if not check.ok:
        raise click.ClickException(f"the imported network differs from ONNX Runtime by {check.relative_difference:.3g}"
                                   f" relative, above the tolerance {tolerance:g}: {out_path} not written")
    try:
        save_network(network, out_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot write {out_path}: {exc}") from None
    click.echo(f"network {network.name!r} written to {out_path}; try: plc-anna simulate --net {out_path}")
