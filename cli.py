"""The ``plc-anna`` command line: a thin click layer over the library."""

from __future__ import annotations

import logging
import sys
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from plc_anna import __version__
from plc_anna.ageing import simulate_ageing
from plc_anna.commands.bench_link import bench_link
from plc_anna.commands.commission import commission
from plc_anna.commands.demo import demo
from plc_anna.commands.plc_sim import plc_sim
from plc_anna.jsonio import write_json
from plc_anna.units import format_age, parse_ages

DEFAULT_AGES = "1h,1d,30d,1y,10y"


def _ages(ctx, param, value: str) -> list[float]:
    try:
        return parse_ages(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _metric_text(metric: dict | None) -> str:
    if metric is None:
        return "n/a"
    if metric["name"] == "accuracy":
        return f"{100 * metric['value']:.1f} %"
    return f"{metric['value']:.3g} {metric['unit']}".strip()


def _ageing_table(report: dict) -> Table:
    metric_name = report["digital_metric"]["name"] if report["digital_metric"] else "metric"
    table = Table(title=f"{report['net']} on {report['device']} (seed {report['seed']}), no compensation")
    table.add_column("age", justify="right")
    table.add_column("age_s", justify="right")
    table.add_column(metric_name, justify="right")
    for layer in report["ages"][0]["layers"]:
        table.add_column(f"G/G0 layer {layer['layer']}", justify="right")
    for row in report["ages"]:
        table.add_row(row["age"], f"{row['age_s']:.6g}", _metric_text(row["metric"]),
                      *[f"{layer['conductance_ratio_median']:.3f}" for layer in row["layers"]])
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plc-anna")
@click.option("-v", "--verbose", count=True, help="Log more: -v plc-anna's own steps, -vv the protocol libraries too.")
def main(verbose: int) -> None:
    """plc-anna: keep analog neural networks accurate in factory control."""
    _configure_logging(verbose)


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, whatever replaced it since (a test runner, a pipe)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(verbose: int) -> None:
    """Warnings of plc-anna on stderr; the protocol libraries' own logs (frame dumps on every lost
    connection) only with -vv: plc-anna reports those failures itself, in one line."""
    root = logging.getLogger()
    # Only a process whose logging nobody configured gets this handler (not a test runner, not an embedder).
    if not root.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("plc_anna").setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    for name in ("asyncua", "pymodbus"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose >= 2 else logging.CRITICAL)


main.add_command(commission)
main.add_command(demo)
main.add_command(plc_sim)


@main.command()
@click.option("--net", "net", default="digits", show_default=True,
              help="Shipped network (digits, thermocouple) or path to a network .npz.")
@click.option("--device", default="pcm", show_default=True,
              help="Device preset (pcm, hermes, ideal) or path to a device .toml.")
@click.option("--ages", default=DEFAULT_AGES, show_default=True, callback=_ages,
              help="Comma-separated ages; units s, min, h, d, y.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Device draw seed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
def simulate(net: str, device: str, ages: list[float], seed: int, json_path: str | None) -> None:
    """Age a simulated analog network and report its uncorrected accuracy."""
    try:
        report = simulate_ageing(net, device, ages, seed=seed)
        if json_path:
            write_json(json_path, report)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    if report["digital_metric"] is not None:
        console.print(f"digital network: {report['digital_metric']['name']} "
                      f"{_metric_text(report['digital_metric'])} on {report['samples']} held-out samples")
    console.print(_ageing_table(report))
    if json_path:
        console.print(f"report written to {json_path}")


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Server configuration (TOML); see docs/server-config.md.")
@click.option("--config-dir", type=click.Path(file_okay=False),
              help="Directory of the server's own files when no --config is given [default: ./plc-anna-server].")
@click.option("--endpoint", help="URL to listen on, e.g. opc.tcp://127.0.0.1:4840/plc-anna.")
@click.option("--scan-ms", type=click.IntRange(5, 10000), help="Scan period in milliseconds.")
@click.option("--test-rig", is_flag=True, default=None, help="Offer the test-rig methods (engineers only).")
@click.option("--network", help="Network the device runs: a shipped name or a .npz file.")
@click.option("--tag-map", type=click.Path(exists=True, dir_okay=False),
              help="Write the corrections to the PLC of this tag map (docs/tag-map.md).")
@click.option("--device-backend", type=click.Choice(["simulated", "plc"]),
              help="simulated, or plc: a physical network observed through the tag map's PLC.")
def serve(config_path, config_dir, endpoint, scan_ms, test_rig, network, tag_map, device_backend) -> None:
    """Run the OPC UA server: the network, its compensator and their history, until Ctrl-C.

    With a tag map the corrections go to the PLC every scan (docs/plc-link.md); with
    --device-backend plc the network's inputs and raw outputs come from the PLC as well.
    """
    import asyncio

    from plc_anna.server.app import PlcAnnaServer
    from plc_anna.server.config import ServerConfig, load_server_config

    overrides = {k: v for k, v in (("endpoint", endpoint), ("scan_ms", scan_ms), ("test_rig", test_rig),
                                   ("network", network), ("tag_map", tag_map),
                                   ("device_backend", device_backend)) if v}
    try:
        if config_path:
            config = load_server_config(config_path)
            if config_dir:
                overrides["config_dir"] = config_dir
        else:
            config = ServerConfig(config_dir=config_dir or "plc-anna-server")
        config = config.replace(**overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    security = config.security
    if not security.users and not security.allow_anonymous:
        console.print("[yellow]no users and no anonymous access are configured: nobody can log in. "
                      "Add \\[\\[security.users]] (see plc-anna hash-password) to the configuration.[/]")

    async def run() -> None:
        async with PlcAnnaServer(config) as server:
            console.print(f"serving {config.network} on {config.endpoint} ({', '.join(security.policies)}), "
                          f"scan {config.scan_ms} ms, state in {config.state_store}"
                          + (f", restored from scan {server.restored_scan}" if server.restored_scan else ""))
            console.print(f"server certificate: {config.config_dir}; trusted clients: {security.trust_dir}")
            if server.controller is not None:
                plc = server.controller.tag_map.plc
                console.print(f"PLC link: {plc.protocol} {plc.endpoint}"
                              + (" (the network is observed through it)" if config.device_backend == "plc" else ""))
            await server.serve_forever()

    try:
        asyncio.run(run())
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    console.print("stopped; state saved")


@main.command()
@click.argument("endpoint")
@click.option("--user", help="User name (prompted for the password); anonymous without.")
@click.option("--password", help="Password (prompted, hidden, when --user is given without it).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate for SignAndEncrypt.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="The client certificate's private key.")
@click.option("--server-cert", type=click.Path(exists=True, dir_okay=False), help="The server's certificate.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600), help="Refresh (s).")
@click.option("--once", is_flag=True, help="Print one table and exit.")
def status(endpoint, user, password, cert, key, server_cert, interval, once) -> None:
    """Show a running server's network, layers and scan diagnostics, refreshed live (Ctrl-C ends)."""
    import asyncio

    from plc_anna.server.status import connect, read_status

    if user and password is None:
        password = click.prompt(f"password of {user}", hide_input=True)
    console = Console()

    async def run() -> None:
        async with connect(endpoint, user, password, cert, key, server_cert) as client:
            if once:
                console.print(_status_table(endpoint, await read_status(client)))
                return
            with Live(_status_table(endpoint, await read_status(client)), console=console) as live:
                while True:
                    await asyncio.sleep(interval)
                    live.update(_status_table(endpoint, await read_status(client)))

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (ConnectionError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _status_table(endpoint: str, status: dict) -> Table:
    diag = status["diagnostics"]
    table = Table(title=f"{endpoint}: age {format_age(status['age_s'])}, {status['temperature_k']:.1f} K",
                  caption=f"scan {diag['ScanPeriod']:g} ms: last {diag['LastCycleTime']:.2f} ms, p99 "
                          f"{diag['P99CycleTime']:.2f} ms, max {diag['MaxCycleTime']:.2f} ms, "
                          f"{diag['Overruns']:.0f} overruns")
    for column in ("layer", "state", "distance", "CUSUM / threshold", "gain min..max", "columns", "samples"):
        table.add_column(column, justify="left" if column in ("layer", "state") else "right")
    for row in status["layers"]:
        table.add_row(row["layer"], row["state"], f"{row['distance']:.3g}",
                      f"{row['statistic']:.3g} / {row['threshold']:.3g}",
                      f"{row['gain_min']:.4f}..{row['gain_max']:.4f}", str(row["columns"]), str(row["samples"]))
    return table


@main.command("hash-password")
@click.password_option("--password", help="The password (prompted twice, hidden, when not given).")
def hash_password(password: str) -> None:
    """Print the scrypt hash of a password for a user of the server's configuration file."""
    from plc_anna.server.passwords import hash_password as make_hash

    if not password:
        raise click.BadParameter("the password is empty", param_hint="--password")
    click.echo(make_hash(password))


@main.group()
def bench() -> None:
    """Benchmarks: every number in the docs comes from one of these."""


def _progress(console: Console):
    return lambda message: console.print(f"  done: {message}", style="dim")


def _methods_table(title: str, rows: list[dict], methods, cell) -> Table:
    """A table of one row per age and one column per method, ``cell(row, method)`` giving the text."""
    table = Table(title=title)
    table.add_column("age", justify="right")
    for method in methods:
        table.add_column(method, justify="right")
    for row in rows:
        table.add_row(format_age(row["age_s"]), *[cell(row, method) for method in methods])
    return table


def _save_report(report: dict, start: float, json_path: str | None, plot_path: str | None, plot) -> None:
    """Stamp the wall time, then write the JSON and the plot that were asked for."""
    report["wall_time_s"] = time.perf_counter() - start
    if json_path:
        write_json(json_path, report)
    if plot_path:
        plot(report, plot_path)


@bench.command("compensation")
@click.option("--net", "nets", multiple=True, help="Network name or .npz (repeatable; default both shipped).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), help=".npz with X and y for a user network.")
@click.option("--device", "devices", multiple=True, help="Device preset or .toml (repeatable; default pcm, hermes).")
@click.option("--ages", default=DEFAULT_AGES, show_default=True, callback=_ages, help="Ages to score at.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1), help="Device seeds averaged.")
@click.option("--samples", default=16384, show_default=True, type=click.IntRange(min=64),
              help="Unlabelled live samples streamed per age.")
@click.option("--quick", is_flag=True, help="One seed, fewer samples, nominal scenario only: a smoke test.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Save a plot (needs matplotlib).")
def bench_compensation(nets, data, devices, ages, seeds, samples, quick, json_path, plot_path) -> None:
    """Every method on every (network, device, scenario), at every age, in one run."""
    from plc_anna.bench.compensation import METHODS, compensation_benchmark, plot_compensation
    from plc_anna.bench.speed import forward_speed, layer_update_speed
    from plc_anna.bench.streams import SCENARIOS

    console = Console()
    start = time.perf_counter()
    try:
        report = compensation_benchmark(
            nets=nets or ("digits", "thermocouple"), devices=devices or ("pcm", "hermes"), ages_s=ages,
            seeds=1 if quick else seeds, samples=min(samples, 8192) if quick else samples, data=data,
            scenarios=("nominal",) if quick else SCENARIOS, progress=_progress(console))
        report["speed"] = layer_update_speed(updates=200 if quick else 2000)
        report["simulator_speed"] = forward_speed(calls=200 if quick else 2000)
        _save_report(report, start, json_path, plot_path, plot_compensation)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for run in report["runs"]:
        def cell(row, method):
            if method == "R":
                return "n/a" if row["recovered_fraction"] is None else f"{row['recovered_fraction']:.3f}"
            m = row["methods"][method]
            metric = f"{100 * m['metric']:.1f}%" if row["metric_name"] == "accuracy" else f"{m['metric']:.3g}"
            return f"{m['output_error']:.4f}\n{metric}"

        console.print(_methods_table(f"{run['net']} / {run['device']} / {run['scenario']}: relative output error "
                                     f"({run['ages'][0]['metric_name']} below)", run["ages"], (*METHODS, "R"), cell))
    speed = report["speed"]
    console.print(f"one compensator update, {speed['columns']} columns x {speed['samples_per_scan']} samples: "
                  f"p50 {speed['update_ms']['p50']:.3f} ms, p99 {speed['update_ms']['p99']:.3f} ms")
    forward = report["simulator_speed"]
    console.print(f"one simulated forward pass, {forward['columns']} x {forward['columns']} layer, "
                  f"{forward['samples']} samples: p50 {forward['forward_ms']['p50']:.3f} ms, "
                  f"p99 {forward['forward_ms']['p99']:.3f} ms")
    console.print(f"summary: {report['summary']}")
    console.print(f"wall time {report['wall_time_s']:.0f} s")


@bench.command("latent")
@click.option("--net", "nets", multiple=True, help="Network name or .npz (repeatable; default both shipped).")
@click.option("--device", "devices", multiple=True, help="Device preset or .toml (repeatable; default pcm).")
@click.option("--seeds", default=2, show_default=True, type=click.IntRange(min=1), help="Device seeds averaged.")
@click.option("--samples", default=16384, show_default=True, type=click.IntRange(min=64),
              help="Unlabelled live samples streamed per age leg.")
@click.option("--quick", is_flag=True, help="One seed, thermocouple only: a smoke test.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Save a plot (needs matplotlib).")
def bench_latent(nets, devices, seeds, samples, quick, json_path, plot_path) -> None:
    """Calibrate up to 30 days, then compensate at 1 and 10 years from the drift latent alone."""
    from plc_anna.bench.latent import METHODS, latent_benchmark, plot_latent

    console = Console()
    start = time.perf_counter()
    try:
        report = latent_benchmark(nets=nets or (("thermocouple",) if quick else ("thermocouple", "digits")),
                                  devices=devices or ("pcm",), seeds=1 if quick else seeds, samples=samples,
                                  progress=_progress(console))
        _save_report(report, start, json_path, plot_path, plot_latent)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for run in report["runs"]:
        def cell(row, method):
            m, r = row["methods"], row["recovered_fraction"]
            if method not in m:
                return "-"
            return f"{m[method]['output_error']:.4f}" + ("" if r.get(method) is None else f"\nR {r[method]:.2f}")

        console.print(_methods_table(f"{run['net']} / {run['device']} / {run['scenario']}: relative output error "
                                     f"(gain prediction error {run['gain_prediction_error_pct']:.2f} %)",
                                     run["ages"], METHODS, cell))
        if run["rul"]:
            rul = run["rul"]
            def age(value):
                return "-" if value is None else f"{value:.3g} s"

            console.print(f"  remaining life: true crossing {age(rul['true_age_s'])}, estimated "
                          f"{age(rul['estimated_age_s'])} (band {age(rul['low_s'])} to {age(rul['high_s'])})")
        if run["fault"]:
            fault = run["fault"]
            console.print(f"  fault injected at {fault['injected_age_s']:.3g} s, detected after "
                          f"{fault['detected_after_scans']} scans; trend changed: {fault['trend_changed']}")
    console.print(f"summary: {report['summary']}")
    console.print(f"wall time {report['wall_time_s']:.0f} s")


@bench.command("detect")
@click.option("--scans", default=20000, show_default=True, type=click.IntRange(min=100), help="Scans per stream.")
@click.option("--samples-per-scan", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--quick", is_flag=True, help="2000 scans per stream: a smoke test.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Save a plot (needs matplotlib).")
def bench_detect(scans, samples_per_scan, seed, quick, json_path, plot_path) -> None:
    """False alarms and detection delays of plc-anna, PageHinkley and ADWIN on the same streams."""
    from plc_anna.bench.detect import detect_benchmark, plot_detect

    console = Console()
    start = time.perf_counter()
    try:
        report = detect_benchmark(scans=2000 if quick else scans, samples_per_scan=samples_per_scan, seed=seed,
                                  progress=_progress(console))
        _save_report(report, start, json_path, plot_path, plot_detect)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"drift detection on {report['net']} / {report['device']}: "
                        "false alarms per 1e5 scans / delay in scans")
    table.add_column("stream")
    table.add_column("kind")
    for detector in ("plc_anna", "page_hinkley", "adwin"):
        table.add_column(detector, justify="right")
    for stream in report["streams"]:
        cells = []
        for detector in ("plc_anna", "page_hinkley", "adwin"):
            d = stream["detectors"][detector]
            delay = "-" if d["delay_scans"] is None else str(d["delay_scans"])
            cells.append(f"{d['false_alarms_per_1e5']:.0f} / {delay}")
        table.add_row(stream["name"], stream["kind"], *cells)
    console.print(table)
    console.print(f"summary: {report['summary']}")
    console.print(f"wall time {report['wall_time_s']:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


bench.add_command(bench_link)


@bench.command("cycle")
@click.option("--columns", default="64,256,1024", show_default=True, help="Comma-separated column counts.")
@click.option("--scan-ms", type=click.IntRange(5, 10000),
              help="Scan period for every run [default: 10 ms up to 256 columns, 100 ms above].")
@click.option("--cycles", default=10000, show_default=True, type=click.IntRange(min=10), help="Cycles per run.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
def bench_cycle(columns, scan_ms, cycles, json_path) -> None:
    """Time the server's scan cycle, next to a bare asyncua server writing the same arrays."""
    from plc_anna.bench.cycle import run_cycle_bench

    try:
        counts = [int(c) for c in columns.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"{columns!r} is not a comma-separated list of integers",
                                 param_hint="--columns") from None
    console = Console()
    start = time.monotonic()
    try:
        report = run_cycle_bench(counts, scan_ms=scan_ms, cycles=cycles, on_progress=console.print)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title="scan cycle (ms)")
    for name in ("columns", "scan", "cycles", "compute p50/p99/max", "lateness p50/p99/max", "overruns",
                 "update p50/p99", "bare asyncua p50/p99"):
        table.add_column(name, justify="right")
    for run in report["runs"]:
        c, la, u, b = run["compute_ms"], run["lateness_ms"], run["server_update_ms"], run["bare_asyncua_update_ms"]
        table.add_row(str(run["columns"]), f"{run['scan_ms']:g}", str(run["cycles"]),
                      f"{c['p50']:.2f}/{c['p99']:.2f}/{c['max']:.1f}", f"{la['p50']:.2f}/{la['p99']:.2f}/{la['max']:.1f}",
                      str(run["overruns"]), f"{u['p50']:.2f}/{u['p99']:.2f}", f"{b['p50']:.2f}/{b['p99']:.2f}")
    console.print(table)
    for target in report["targets"]:
        verdict = {True: "met", False: "NOT met", None: f"not measured ({target.get('why', '')})"}[target["met"]]
        console.print(f"target {target['target']}: {verdict}")
    if json_path:
        write_json(json_path, report)
        console.print(f"report written to {json_path}")
    console.print(f"took {time.monotonic() - start:.0f} s")
