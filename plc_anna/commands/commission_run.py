"""``plc-anna commission run``: validate, calibrate on the PLC's live samples, save the baseline, commit, verify.

The on-site procedure's last step (``docs/commissioning.md``), over :mod:`plc_anna.commission`.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from plc_anna import commission as steps
from plc_anna.commission import kept
from plc_anna.commands.commission_common import (Output, checks_table, common_options, load_map, load_network_of,
                                                 span)
from plc_anna.compensator import CompensatorConfig

@click.command("run", short_help="Validate, calibrate, save the baseline, commit, verify.")
@click.argument("tagmap", type=click.Path(exists=True, dir_okay=False))
@click.option("--net", help="The network [default: the map's network].")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), metavar="SERVER_TOML",
              help="The configuration 'plc-anna serve' will run with: its state_store gets the baseline.")
@click.option("--store", type=click.Path(dir_okay=False), metavar="FILE",
              help="The state store to save the baseline to (instead of --config).")
@click.option("--dry-run", is_flag=True, help="Validate, calibrate and show the plan; write no set and save no "
                                               "baseline. The calibration is kept for the run (--calibration).")
@click.option("--calibration", "calibration_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where a dry run keeps its calibration and the run takes it back [default: beside the tag map, "
                   "MAP.calibration.sqlite].")
@click.option("--recalibrate", is_flag=True, help="Calibrate anew even when a dry run's calibration can be reused.")
@click.option("--force", is_flag=True, help="Overwrite a store that holds another network's state.")
@click.option("--calibration-samples", type=click.IntRange(min=2), metavar="N",
              default=CompensatorConfig().calibration_samples, show_default=True,
              help="Samples of the fingerprint (fewer: faster, noisier).")
@click.option("--calibration-timeout", type=click.FloatRange(min=1.0), default=120.0, show_default=True,
              metavar="SECONDS", help="Give up calibrating after this long.")
@common_options("run")
def run(tagmap, net, config_path, store, dry_run, calibration_file, recalibrate, force, calibration_samples,
        calibration_timeout, user, password, timeout, yes, json_path) -> None:
    """Commission TAGMAP: validate, calibrate on the PLC's live samples, save the baseline for 'serve',
    show the first commit, ask, commit it and verify what the PLC took."""
    out = Output("run", json_path)
    if config_path and store:
        raise click.UsageError("give --config or --store, not both")
    if not (config_path or store or dry_run):
        raise click.UsageError("give --config SERVER_TOML or --store FILE: where 'plc-anna serve' finds the "
                               "baseline (or --dry-run)")
    tag_map = load_map(out, tagmap, user, password, timeout, yes)
    network = load_network_of(out, net, tag_map)
    store_path = _store_path(out, config_path, store, network) if (config_path or store) else None
    out.doc.update(dry_run=dry_run, store=None if store_path is None else str(store_path), steps={})
    step = out.doc["steps"]

    checks = out.run(steps.validate(tag_map, network))
    step["validate"] = {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}
    out.print(checks_table(f"{tagmap}: validation", checks))
    if not step["validate"]["ok"]:
        out.finish(False)

    config = CompensatorConfig(calibration_samples=calibration_samples)
    kept_path = Path(calibration_file) if calibration_file else kept.calibration_path(tagmap)
    runtime = None
    if not dry_run and not recalibrate:
        runtime, info, why = kept.kept_calibration(kept_path, tag_map=tag_map, tag_map_path=tagmap, network=network,
                                                   config=config)
        out.print(why)
    if runtime is None:
        runtime, info = out.run(_calibrate(out, tag_map, network, config, calibration_timeout))
    step["calibrate"] = {"ok": True, "reused": None if "kept_at" not in info else str(kept_path), **info}
    out.print(f"calibrated: {info['samples']} samples in {info['seconds']:.1f} s ({info['samples_lost']} lost); "
              f"layer states: {', '.join(state.lower() for state in info['states'])}")
    if dry_run:
        try:
            kept.keep_calibration(runtime, info, kept_path, tag_map_path=tagmap, network=network, config=config)
        except (ValueError, OSError) as exc:
            raise out.fail(f"cannot keep the calibration in {kept_path}: {exc}") from None
        step["calibrate"]["kept"] = str(kept_path)
    if store_path is not None and not dry_run:
        try:
            saved = steps.save_baseline(runtime, store_path, force=force)
        except (ValueError, OSError) as exc:
            raise out.fail(f"{exc}{' (--force)' if 'force the overwrite' in str(exc) else ''}") from None
        step["baseline"] = {"ok": True, **saved}
        out.print(f"baseline saved to {store_path}: 'plc-anna serve' starts from it")

    plan = out.run(_plan(tag_map, runtime))
    step["plan"] = {"ok": True, "layers": plan}
    out.print(_plan_table(plan))
    if dry_run:
        out.print(f"dry run: no baseline saved, no set written; the calibration is kept in {kept_path}: 'run' "
                  f"without --dry-run commits this plan (within {kept.REUSE_WITHIN_S / 60:.0f} min; --recalibrate "
                  "to calibrate anew)")
        out.finish(True)
        return
    if not yes and not click.confirm("Write these sets to the PLC?", default=False, err=True):
        step["commit"] = {"ok": False, "checks": [], "declined": True}
        out.print("not committed: the PLC keeps its set")
        out.finish(False)
    checks = out.run(steps.commit_and_verify(tag_map, plan))
    step["commit"] = {"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}
    out.print(checks_table("commit and verification", checks))
    if step["commit"]["ok"]:
        out.print("commissioned: start 'plc-anna serve' with this store; until it beats the heartbeat, the PLC "
                  "holds this set (Fault)")
    out.finish(step["commit"]["ok"])


def _store_path(out: Output, config_path: str | None, store: str | None, network) -> Path:
    if store:
        return Path(store)
    from plc_anna.device.network import load_network
    from plc_anna.server.config import load_server_config

    try:
        config = load_server_config(config_path)
        if config.device_backend != "plc":
            raise ValueError(f"{config_path}: device_backend is {config.device_backend!r}: 'serve' would run the "
                             "simulator and refuse this baseline; set device_backend = \"plc\" and tag_map")
        if load_network(config.network).name != network.name:
            raise ValueError(f"{config_path}: network is {config.network!r}, the tag map's is {network.name!r}")
        config.config_dir.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        raise out.fail(str(exc)) from None
    return config.state_store


async def _calibrate(out: Output, tag_map, network, config: CompensatorConfig, timeout_s: float):
    columns = (TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
               TimeElapsedColumn())
    with Progress(*columns, console=out.console, transient=False) as progress:
        task = progress.add_task("calibrating", total=config.calibration_samples)
        return await steps.calibrate(tag_map, network, config, timeout_s=timeout_s,
                                     progress=lambda done, total: progress.update(task, completed=done))


async def _plan(tag_map, runtime) -> list[dict]:
    from plc_anna.plc.transport import open_transport

    transport = open_transport(tag_map.plc)
    try:
        await transport.connect()
        return await steps.plan_commit(tag_map, runtime, transport)
    finally:
        await transport.close()


def _plan_table(plan: list[dict]) -> Table:
    table = Table(title="first commit (dry run): the set per layer, and what the PLC holds",
                  title_justify="left")
    for column in ("layer", "gain", "offset", "PLC GainSet", "PLC applied", "max Δ gain, offset", "counter",
                   "sets"):
        table.add_column(column)
    for entry in plan:
        table.add_row(str(entry["layer"]), span(entry["gain"]), span(entry["offset"]), span(entry["plc_gain_set"]),
                      span(entry["plc_applied_gain"]),
                      f"{entry['max_gain_difference']:.3g}, {entry['max_offset_difference']:.3g}",
                      str(entry["counter"]), str(entry["sets"]))
    return table


__all__ = ["run"]
