"""PLC code for your own network: ``plc-anna plc-code`` (``ladder_examples/README.md``).

:func:`generate` writes, in memory, the correction block ``FB_AnnaCorrection_<N>`` (one per layer width),
one variable list or DB per layer sized to the network (gains, offsets, sets, applied values,
counters, heartbeat, trace arrays), the calling program, for OpenPLC the Modbus register map, and the
tag map (``plc_anna.toml``) that ``plc-anna commission validate`` accepts against ``plc-anna plc-sim``
started with the same network. :func:`write` puts the files in a folder.

Nothing here is a copy by hand: the block's limits, ramp and watchdog come from
:mod:`plc_anna.contract.logic` (the reference the simulated PLC runs), the tags' names, types,
lengths and addresses from :mod:`plc_anna.contract.layout` (the layout the simulated PLC serves).

Examples
--------
>>> from plc_anna.device.network import load_network
>>> code = generate(load_network("thermocouple"), "twincat")
>>> sorted(code.files)[:3]
['FB_AnnaCorrection_32.st', 'FB_AnnaCorrection_4.st', 'GVL_Device.st']
>>> code.tag_map.layer(2).gain_set.address
'ns=4;s=GVL_PlcAnna_L2.GainSet'
>>> generate(load_network("digits"), "openplc", trace_length=64)
Traceback (most recent call last):
...
ValueError: OpenPLC has no memory for a trace ring buffer: give trace length 0 for openplc
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plc_anna.contract.layout import TARGETS
from plc_anna.contract.logic import DEFAULTS, BlockParameters
from plc_anna.contract.tagmap import TagMap, tag_map_to_toml
from plc_anna.device.network import Network
from plc_anna.plccode import openplc, plcopen, scl, st
from plc_anna.plccode.program import PlcProgram

#: Target -> the writer of its files.
WRITERS = {"codesys": st.files, "twincat": st.files, "s7-1500": scl.files, "openplc": openplc.files,
           "plcopen-xml": plcopen.files}
TAG_MAP_FILE = "plc_anna.toml"
#: Where plc-anna plc-sim listens by default, per protocol (the generated tag map's endpoint unless given).
DEFAULT_ENDPOINTS = {"opcua": "opc.tcp://127.0.0.1:4841", "modbus": "modbus://127.0.0.1:5020"}


@dataclass(frozen=True)
class PlcCode:
    """Generated files by name (text), the program they were generated for, and the tag map among them."""

    program: PlcProgram
    files: dict[str, str]
    tag_map: TagMap


def generate(network: Network, target: str, *, trace_length: int | None = None,
             parameters: BlockParameters = DEFAULTS, endpoint: str | None = None,
             device_name: str | None = None) -> PlcCode:
    """The PLC code of ``network`` for ``target``, checked against the target's limits; nothing is written.

    Parameters
    ----------
    network
        The network the PLC's layers run.
    target
        ``codesys``, ``twincat``, ``s7-1500``, ``openplc`` or ``plcopen-xml``.
    trace_length
        Rows of each layer's trace ring (a power of two; None: 64, and 0 for OpenPLC, which has no room).
    parameters
        The correction block's parameters (``cycle_s`` is the task interval).
    endpoint
        The PLC's endpoint in the tag map (default: where ``plc-anna plc-sim`` listens).
    device_name
        The controller's name in OPC UA NodeIds (default: the simulated PLC's; CODESYS: your device's
        name, S7: the PLC's name, TwinCAT: the PLC project's).

    Raises
    ------
    ValueError
        For an unknown target, a network outside 1..8 layers or 1..1024 columns, a trace length that is
        no power of two, or a network too large for the target (S7-1500 data block size, OpenPLC memory),
        naming the problem.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    program = PlcProgram.for_network(network, target, trace_length=trace_length, parameters=parameters,
                                     device_name=device_name)
    files = WRITERS[target](program)
    tag_map = program.layout.tag_map(endpoint or DEFAULT_ENDPOINTS[program.layout.protocol], network=network.name,
                                     source=TAG_MAP_FILE)
    files[TAG_MAP_FILE] = tag_map_to_toml(tag_map)
    return PlcCode(program, files, tag_map)


def write(code: PlcCode, out_dir: str | Path, *, force: bool = False) -> list[Path]:
    """Write the files into ``out_dir`` (created); ValueError, and nothing written, when one exists and not ``force``."""
    out = Path(out_dir)
    paths = [out / name for name in code.files]
    existing = [path for path in paths if path.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists (and {len(existing) - 1} more): give --force to overwrite"
                         if len(existing) > 1 else f"{existing[0]} exists: give --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, code.files.values()):
        path.write_text(text)
    return paths


__all__ = ["DEFAULT_ENDPOINTS", "TAG_MAP_FILE", "WRITERS", "PlcCode", "PlcProgram", "generate", "write"]
