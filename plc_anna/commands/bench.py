"""``plc-anna bench``: every number in the docs comes from one of these."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.table import Table

from plc_anna.commands.bench_endpoint import bench_endpoint
from plc_anna.commands.bench_link import bench_link
from plc_anna.commands.common import DEFAULT_AGES, ages_option
from plc_anna.jsonio import write_json
from plc_anna.units import format_age


@click.group()
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


def _targets_and_report(console: Console, report: dict, json_path: str | None, start: float) -> None:
    """Print each target of the report with its verdict, write the JSON if asked, print the wall time."""
    for target in report["targets"]:
        verdict = {True: "met", False: "NOT met", None: f"not measured ({target.get('why', '')})"}[target["met"]]
        console.print(f"target {target['target']}: {verdict}")
    if json_path:
        write_json(json_path, report)
        console.print(f"report written to {json_path}")
    console.print(f"took {time.monotonic() - start:.0f} s")


def _save_report(report: dict, start: float, json_path: str | None, plot_path: str | None, plot) -> None:
    """Stamp the wall time, then write the JSON and the plot that were asked for."""
    report["wall_time_s"] = time.perf_counter() - start
    if json_path:
        write_json(json_path, report)
    if plot_path:
        plot(report, plot_path)


@bench.command("compensation")
@click.option("--net", "nets", multiple=True,
              help="Network: shipped (digits, thermocouple), the benchmark's own (diabetes, breast_cancer, wine, "
                   "wide) or a .npz (repeatable; default all six).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), help=".npz with X and y for a user network.")
@click.option("--device", "devices", multiple=True, help="Device preset or .toml (repeatable; default pcm, hermes).")
@click.option("--ages", default=DEFAULT_AGES, show_default=True, callback=ages_option, help="Ages to score at.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1), help="Device seeds averaged.")
@click.option("--samples", default=16384, show_default=True, type=click.IntRange(min=64),
              help="Unlabelled live samples streamed per age.")
@click.option("--quick", is_flag=True, help="One seed, fewer samples, nominal scenario only: a smoke test.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Save a plot (needs matplotlib).")
def bench_compensation(nets, data, devices, ages, seeds, samples, quick, json_path, plot_path) -> None:
    """Every method on every (network, device, scenario), at every age, in one run."""
    from plc_anna.bench.compensation import DEFAULT_NETS, METHODS, compensation_benchmark, plot_compensation
    from plc_anna.bench.speed import forward_speed, layer_update_speed
    from plc_anna.bench.streams import SCENARIOS

    console = Console()
    start = time.perf_counter()
    try:
        report = compensation_benchmark(
            nets=nets or DEFAULT_NETS, devices=devices or ("pcm", "hermes"), ages_s=ages,
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
            if method == "/oracle":
                return "n/a" if row["oracle_ratio"] is None else f"{row['oracle_ratio']:.3f}"
            m = row["methods"][method]
            metric = f"{100 * m['metric']:.1f}%" if row["metric_name"] == "accuracy" else f"{m['metric']:.3g}"
            return f"{m['output_error']:.4f}\n{metric}"

        console.print(_methods_table(f"{run['net']} / {run['device']} / {run['scenario']}: relative output error "
                                     f"({run['ages'][0]['metric_name']} below)", run["ages"], (*METHODS, "R", "/oracle"), cell))
    speed = report["speed"]
    console.print(f"one compensator update, {speed['columns']} columns x {speed['samples_per_scan']} samples: "
                  f"p50 {speed['update_ms']['p50']:.3f} ms, p99 {speed['update_ms']['p99']:.3f} ms")
    forward = report["simulator_speed"]
    console.print(f"one simulated forward pass, {forward['columns']} x {forward['columns']} layer, "
                  f"{forward['samples']} samples: p50 {forward['forward_ms']['p50']:.3f} ms, "
                  f"p99 {forward['forward_ms']['p99']:.3f} ms")
    summary = report["summary"]
    console.print(f"plc-anna at or below GDC and per-column GDC: {summary['cases_at_or_below_gdc']} cases")
    console.print(f"output error / oracle's, every age from 1 h: at most {summary['max_oracle_ratio_from_1h']:.3f} "
                  f"({summary['max_oracle_ratio_case']}); target <= 1.05 "
                  f"{'met' if summary['oracle_ratio_target_met'] else 'NOT met'}")
    console.print(f"recovered fraction R, every age from 1 h: at least {summary['min_recovered_fraction_from_1h']:.3f} "
                  f"({summary['min_recovered_fraction_case']}); target >= 0.9 "
                  f"{'met' if summary['recovered_fraction_target_met'] else 'NOT met'}")
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
@click.option("--scans", default=100_000, show_default=True, type=click.IntRange(min=100),
              help="Scans per stream (the targets are stated for 1e5).")
@click.option("--samples-per-scan", default=64, show_default=True, type=click.IntRange(min=4))
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
                        "false alarms per 1e5 scans / delay in scans (plc-anna: and faults)")
    table.add_column("stream")
    table.add_column("kind")
    for detector in ("plc_anna", "page_hinkley", "adwin"):
        table.add_column(detector, justify="right")
    table.add_column("bound", justify="right")
    for stream in report["streams"]:
        cells = []
        for detector in ("plc_anna", "page_hinkley", "adwin"):
            d = stream["detectors"][detector]
            delay = "-" if d["delay_scans"] is None else str(d["delay_scans"])
            faults = "" if d["faults"] is None else f" ({d['faults']} faults)"
            cells.append(f"{d['false_alarms_per_1e5']:.0f} / {delay}{faults}")
        bound = stream.get("delay_bound_scans")
        table.add_row(stream["name"], stream["kind"], *cells, "-" if bound is None else f"{bound:.3g}")
    console.print(table)
    for target in report["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        console.print(f"target {target['target']}: {verdict} ({target['measured']})")
    console.print(f"wall time {report['wall_time_s']:.0f} s")


bench.add_command(bench_link)
bench.add_command(bench_endpoint)


def _counts(text: str, option: str, low: int = 1) -> list[int]:
    try:
        values = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint=option) from None
    if not values or min(values) < low:
        raise click.BadParameter(f"give integers >= {low}, got {text!r}", param_hint=option)
    return values


@bench.command("cycle")
@click.option("--columns", default="64,256,1024", show_default=True, help="Columns per layer (comma-separated).")
@click.option("--layers", default="1", show_default=True, help="Layers per network (comma-separated).")
@click.option("--networks", default="1", show_default=True, help="Networks in the server (comma-separated).")
@click.option("--subscribers", default="0", show_default=True,
              help="Client sessions subscribing to every layer's distance, state, gain and offset (comma-separated).")
@click.option("--publish-ms", default=100, show_default=True, type=click.IntRange(10, 10000),
              help="The subscriptions' publishing interval, and the server's.")
@click.option("--scan-ms", type=click.IntRange(5, 10000),
              help="Scan period for every run [default: 10 ms up to 256 columns, 100 ms above].")
@click.option("--cycles", default=10000, show_default=True, type=click.IntRange(min=10), help="Cycles per run.")
@click.option("--isolation", type=click.Choice(["process", "thread"]), default="process", show_default=True,
              help="Where the scans run (the server key scan_isolation).")
@click.option("--scan-priority", default=40, show_default=True, type=click.IntRange(0, 49),
              help="Real-time priority of the scans (the server key scan_priority; 0: normal).")
@click.option("--blas-threads", default="1", show_default=True,
              help="BLAS threads in the scan engine, or 'default' for BLAS's own.")
@click.option("--targets", "targets", is_flag=True,
              help="Run exactly the runs the targets name (long: about 70 minutes); ignores the run options.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
def bench_cycle(columns, layers, networks, subscribers, publish_ms, scan_ms, cycles, isolation, scan_priority,
                blas_threads, targets, json_path) -> None:
    """Time the server's scan cycle under SCADA load, next to bare asyncua and the numpy floor."""
    import itertools

    from plc_anna.bench.cycle import TARGETS, CycleRun, run_cycle_bench, spec_scan_ms

    if targets:
        runs = [target.run for target in TARGETS]
    else:
        runs = [CycleRun(columns=c, layers=lay, networks=k, subscribers=n, cycles=cycles, publish_ms=publish_ms,
                         scan_ms=scan_ms or spec_scan_ms(c))
                for c, lay, k, n in itertools.product(_counts(columns, "--columns"), _counts(layers, "--layers"),
                                                      _counts(networks, "--networks"),
                                                      _counts(subscribers, "--subscribers", low=0))]
    if blas_threads == "default":
        threads = None
    else:
        threads = _counts(blas_threads, "--blas-threads")[0]
    console = Console()
    start = time.monotonic()
    try:
        report = run_cycle_bench(runs, isolation=isolation, priority=scan_priority, blas_threads=threads,
                                 on_progress=console.print)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"scan cycle (ms), {isolation} isolation, priority {scan_priority}")
    for name in ("networks x layers x columns", "subs", "scan", "cycles", "compute p50/p99/max",
                 "lateness p99/max", "overruns", "update p50/p99", "bare p50/p99", "numpy floor p50", "dropped"):
        table.add_column(name, justify="right")
    for run in report["runs"]:
        c, la, u, b = run["compute_ms"], run["lateness_ms"], run["server_update_ms"], run["bare_asyncua_update_ms"]
        table.add_row(f"{run['networks']} x {run['layers']} x {run['columns']}", str(run["subscribers"]),
                      f"{run['scan_ms']:g}", str(run["cycles_total"]), f"{c['p50']:.2f}/{c['p99']:.2f}/{c['max']:.1f}",
                      f"{la['p99']:.2f}/{la['max']:.1f}", str(run["overruns"]), f"{u['p50']:.2f}/{u['p99']:.2f}",
                      f"{b['p50']:.2f}/{b['p99']:.2f}", f"{run['numpy_floor_ms']['p50']:.3f}",
                      str(run["publish_dropped"]))
    console.print(table)
    _targets_and_report(console, report, json_path, start)


@bench.command("fleet")
@click.option("--nodes", default=32, show_default=True, type=click.IntRange(1, 1000), help="Edge nodes.")
@click.option("--networks", default=4, show_default=True, type=click.IntRange(1, 64), help="Networks per node.")
@click.option("--columns", default=256, show_default=True, type=click.IntRange(1, 4096),
              help="Columns of each of a network's two layers.")
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(1.0, 3600.0),
              help="Length of the steady phase.")
@click.option("--publish-ms", default=1000, show_default=True, type=click.IntRange(10, 60000))
@click.option("--keepalive", default=5, show_default=True, type=click.IntRange(1, 600), help="MQTT keepalive (s).")
@click.option("--processes", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Processes the edge nodes are spread over.")
@click.option("--broker", "broker_kind", type=click.Choice(["mosquitto", "amqtt"]),
              help="The broker [default: mosquitto when installed, else amqtt].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
def bench_fleet(nodes, networks, columns, seconds, publish_ms, keepalive, processes, broker_kind, json_path) -> None:
    """Edge nodes, a real broker and the fleet host on loopback: throughput, latency, gaps, losses,
    a broker restart and a killed node. docs/benchmarks.md#fleet explains every number."""
    from plc_anna.bench.fleet import run_fleet_bench

    console = Console()
    start = time.monotonic()
    try:
        report = run_fleet_bench([(nodes, networks, columns)], seconds=seconds, publish_ms=publish_ms,
                                 keepalive_s=keepalive, processes=processes, broker_kind=broker_kind,
                                 progress=lambda text: console.print(f"  {text}", style="dim"))
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    for run in report["runs"]:
        restart, kill, latency, bare = (run["broker_restart"], run["node_kill"], run["latency_ms"],
                                        run["bare_mqtt_latency_ms"])
        table = Table(title=f"fleet: {run['nodes']} nodes x {run['networks']} networks x {run['columns']} columns, "
                            f"{run['broker']}, {run['publish_ms']} ms")
        table.add_column("measured")
        table.add_column("value", justify="right")
        for name, value in (
                ("metric values/s at the host", f"{run['metrics_per_s']:.0f}"),
                ("latency p50/p99 (ms)", f"{latency['p50']:.1f}/{latency['p99']:.1f}"),
                ("bare MQTT p50/p99 (ms), same run", f"{bare['p50']:.1f}/{bare['p99']:.1f}"),
                ("seq gaps", str(run["seq_gaps"])), ("scans lost", str(run["lost"])),
                ("broker restart: all reborn after (s)",
                 "-" if restart["rebirth_s"] is None else f"{restart['rebirth_s']:.2f}"),
                ("broker restart: replayed / lost", f"{restart['replayed']} / {restart['lost']}"),
                ("killed node offline after (s)",
                 "-" if kill["offline_detected_s"] is None
                 else f"{kill['offline_detected_s']:.2f} (limit {kill['limit_s']:g})")):
            table.add_row(name, value)
        console.print(table)
    _targets_and_report(console, report, json_path, start)
