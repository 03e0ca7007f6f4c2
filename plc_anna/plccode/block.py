"""The correction block ``FB_AnnaCorrection`` as IEC 61131-3 text, from the PLC contract.

The interface (names, types, defaults) comes from :mod:`plc_anna.contract.logic`
(:data:`~plc_anna.contract.logic.DEFAULTS`, :data:`~plc_anna.contract.logic.IEC_PARAMETERS`), and so
do the open decisions D1..D11 the block's comment repeats. The statements are written once, in
Structured Text, and follow the reference step by step: 1. watchdog (D1-D3), 2. commit (D4, D5, D7),
3. ramp (:func:`plc_anna.contract.ramp.ramp_step`: at most one step, REAL arithmetic, landing exactly on
the target, D9), 4. outputs and ``Status`` (D6). SCL spells the same statements with ``#`` before
local names and named ``LIMIT`` arguments (:func:`scl_statements`).

A block has fixed array bounds, so a network whose layers have different widths gets one block per
width: ``FB_AnnaCorrection_<N>`` (:func:`block_name`).
"""

from __future__ import annotations

import math
import re

from plc_anna.contract import logic
from plc_anna.contract.logic import DEFAULTS, IEC_PARAMETERS, BlockParameters

#: Comments of the parameter inputs.
PARAMETER_COMMENTS = {"CycleTime": "dt: the interval of the task that calls the block",
                      "MaxGainStep": "largest change of an applied gain per cycle",
                      "MaxOffsetStep": "largest change of an applied offset per cycle, output units"}
#: (name, IEC type, comment) of the block's inputs before the parameters, its outputs and its locals.
ARRAY = "ARRAY"
INPUTS = (("RawOutputs", ARRAY, "the network's analog outputs"), ("GainSet", ARRAY, "written by plc-anna"),
          ("OffsetSet", ARRAY, "written by plc-anna"),
          ("CommitCounter", "UDINT", "written by plc-anna after each complete set, in the same batch"),
          ("Heartbeat", "UDINT", "incremented by plc-anna every scan"))
OUTPUTS = (("CorrectedOutputs", ARRAY, ""), ("AppliedGain", ARRAY, ""), ("AppliedOffset", ARRAY, ""),
           ("AcceptedCommit", "UDINT", "the last CommitCounter evaluated (accepted or rejected)"),
           ("Fault", "BOOL", "heartbeat lost: holding the last applied values"),
           ("PlcHeartbeat", "UDINT", "+1 every cycle"), ("Status", "INT", "0 OK, 1 ramping, 2 holding, 3 rejected"))
#: (name, IEC type, initial value or None); the last two are temporaries (SCL: VAR_TEMP).
LOCALS = (("TargetGain", ARRAY, None), ("TargetOffset", ARRAY, None), ("LastHeartbeat", "UDINT", "0"),
          ("Stall", "TIME", "T#0MS"), ("Rejected", "BOOL", None), ("Ramping", "BOOL", None),
          ("SetValid", "BOOL", None), ("Initialized", "BOOL", None), ("Delta", "REAL", None), ("j", "DINT", None))
TEMPORARIES = ("Delta", "j")
PARAMETER_TYPES = {"CycleTime": "TIME", "HeartbeatTimeout": "TIME"}  # the others are REAL


def block_name(n_outputs: int) -> str:
    """The block for ``n_outputs`` columns.

    >>> block_name(32)
    'FB_AnnaCorrection_32'
    """
    return f"FB_AnnaCorrection_{n_outputs}"


def iec_time(seconds: float) -> str:
    """A TIME literal in whole milliseconds.

    >>> iec_time(0.5), iec_time(0.01)
    ('T#500MS', 'T#10MS')
    """
    ms = seconds * 1000.0
    if not (math.isfinite(ms) and ms >= 1 and abs(ms - round(ms)) < 1e-9):
        raise ValueError(f"a PLC TIME here is a whole number of milliseconds >= 1, got {seconds!r} s")
    return f"T#{round(ms)}MS"


def in_words(seconds: float) -> str:
    """A task interval for comments: ``10 ms``."""
    return f"{iec_time(seconds)[2:-2]} ms"


def iec_real(value: float) -> str:
    """A REAL literal: plain below 1E5, else mantissa and exponent.

    >>> iec_real(0.25), iec_real(4), iec_real(-1e6), iec_real(0.02)
    ('0.25', '4.0', '-1.0E6', '0.02')
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a REAL parameter must be finite, got {value!r}")
    if value != 0 and not 1e-4 <= abs(value) < 1e5:
        mantissa, exponent = f"{value:.7e}".split("e")
        mantissa = mantissa.rstrip("0")
        return f"{mantissa}0E{int(exponent)}" if mantissa.endswith(".") else f"{mantissa}E{int(exponent)}"
    text = repr(value)
    return text if "." in text or "e" in text else f"{text}.0"


def parameter_defaults(parameters: BlockParameters = DEFAULTS) -> dict[str, tuple[str, str]]:
    """``{IEC name: (type, literal)}`` of the block's parameter inputs, in declaration order."""
    logic.CorrectionBlock(1, **{f: getattr(parameters, f) for f in IEC_PARAMETERS.values() if f != "cycle_s"})  # D11
    out = {}
    for name, field in IEC_PARAMETERS.items():
        value = getattr(parameters, field)
        kind = PARAMETER_TYPES.get(name, "REAL")
        out[name] = (kind, iec_time(value) if kind == "TIME" else iec_real(value))
    return out


def decisions() -> list[str]:
    """D1. ... D11., as :mod:`plc_anna.contract.logic` states them."""
    return re.findall(r"^(D\d{1,2}\. .*)$", logic.__doc__, flags=re.MULTILINE)


def summary_lines(n_outputs: int) -> list[str]:
    """The block's leading comment, line by line (without comment delimiters)."""
    return [
        f"{block_name(n_outputs)} - the PLC side of plc-anna for one corrected layer of N = {n_outputs} analog outputs.",
        "",
        "plc-anna computes a per-column gain and offset for the analog neural network's outputs and",
        "writes them as one set: GainSet, OffsetSet, then CommitCounter + 1. The block takes a set only",
        "when CommitCounter changes, rejects a set with a non-finite element, clamps it, ramps the applied",
        "values toward it and corrects every cycle:",
        "    CorrectedOutputs[j] := AppliedGain[j] * RawOutputs[j] + AppliedOffset[j]",
        "plc-anna also increments Heartbeat every scan; when it stands still for HeartbeatTimeout the block",
        "sets Fault and holds the last applied values (last-good hold) until it moves again.",
        "",
        "Each cycle: 1. watchdog, 2. commit, 3. ramp, 4. outputs (docs/plc-side.md has the table).",
        "Status: 0 OK, 1 ramping, 2 heartbeat lost (holding), 3 last set rejected.",
        f"Array bounds 0..{n_outputs - 1}. Call the block once per task cycle with CycleTime = the task interval.",
        "",
        "Decisions the specification leaves open (the same in docs/plc-side.md and plc_anna.contract.logic):",
        *decisions(),
    ]


def st_statements(n_outputs: int) -> str:
    """The block's statements in Structured Text, for array bounds ``0..n_outputs-1``."""
    last = n_outputs - 1
    return f"""(* 0. initial state: identity correction *)
IF NOT Initialized THEN
    FOR j := 0 TO {last} DO
        AppliedGain[j] := 1.0;
        AppliedOffset[j] := 0.0;
        TargetGain[j] := 1.0;
        TargetOffset[j] := 0.0;
    END_FOR;
    Initialized := TRUE;
END_IF;

(* 1. watchdog *)
IF Heartbeat <> LastHeartbeat THEN
    LastHeartbeat := Heartbeat;
    Stall := T#0MS;
ELSIF Stall < HeartbeatTimeout THEN
    Stall := Stall + CycleTime;
END_IF;
Fault := Stall >= HeartbeatTimeout;

(* 2. commit: take a set only when its counter changes *)
IF NOT Fault AND (CommitCounter <> AcceptedCommit) THEN
    SetValid := TRUE;
    FOR j := 0 TO {last} DO
        IF (GainSet[j] <> GainSet[j]) OR (GainSet[j] > 3.4E38) OR (GainSet[j] < -3.4E38)
                OR (OffsetSet[j] <> OffsetSet[j]) OR (OffsetSet[j] > 3.4E38) OR (OffsetSet[j] < -3.4E38) THEN
            SetValid := FALSE;
        END_IF;
    END_FOR;
    IF SetValid THEN
        FOR j := 0 TO {last} DO
            TargetGain[j] := LIMIT(GainMin, GainSet[j], GainMax);
            TargetOffset[j] := LIMIT(OffsetMin, OffsetSet[j], OffsetMax);
        END_FOR;
        Rejected := FALSE;
    ELSE
        Rejected := TRUE;
    END_IF;
    AcceptedCommit := CommitCounter;
END_IF;

(* 3. ramp toward the targets, at most one step per cycle *)
Ramping := FALSE;
IF NOT Fault THEN
    FOR j := 0 TO {last} DO
        Delta := TargetGain[j] - AppliedGain[j];
        IF Delta > MaxGainStep THEN
            AppliedGain[j] := AppliedGain[j] + MaxGainStep;
        ELSIF Delta < -MaxGainStep THEN
            AppliedGain[j] := AppliedGain[j] - MaxGainStep;
        ELSE
            AppliedGain[j] := TargetGain[j];
        END_IF;
        Delta := TargetOffset[j] - AppliedOffset[j];
        IF Delta > MaxOffsetStep THEN
            AppliedOffset[j] := AppliedOffset[j] + MaxOffsetStep;
        ELSIF Delta < -MaxOffsetStep THEN
            AppliedOffset[j] := AppliedOffset[j] - MaxOffsetStep;
        ELSE
            AppliedOffset[j] := TargetOffset[j];
        END_IF;
        IF (AppliedGain[j] <> TargetGain[j]) OR (AppliedOffset[j] <> TargetOffset[j]) THEN
            Ramping := TRUE;
        END_IF;
    END_FOR;
END_IF;

(* 4. outputs *)
FOR j := 0 TO {last} DO
    CorrectedOutputs[j] := AppliedGain[j] * RawOutputs[j] + AppliedOffset[j];
END_FOR;
PlcHeartbeat := PlcHeartbeat + 1;   (* UDINT: 4294967295 + 1 wraps to 0 *)
IF Fault THEN
    Status := 2;
ELSIF Rejected THEN
    Status := 3;
ELSIF Ramping THEN
    Status := 1;
ELSE
    Status := 0;
END_IF;
"""


def variable_names() -> list[str]:
    """Every name declared by the block (inputs, parameters, outputs, locals)."""
    return [n for n, _, _ in INPUTS] + list(IEC_PARAMETERS) + [n for n, _, _ in OUTPUTS] + [n for n, _, _ in LOCALS]


def scl_statements(n_outputs: int) -> str:
    """The same statements in Siemens SCL: ``#`` before the block's names, ``//`` comments, named LIMIT."""
    names = "|".join(sorted(variable_names(), key=len, reverse=True))
    lines = []
    for line in st_statements(n_outputs).splitlines():
        code, _, comment = line.partition("(*")
        code = re.sub(rf"(?<![\w#.])({names})\b", r"#\1", code)
        code = re.sub(r"LIMIT\(([^,]+), ([^,]+), ([^)]+)\)", r"LIMIT(MN := \1, IN := \2, MX := \3)", code)
        code = code.replace("UDINT:", "UDInt:")
        if comment:
            comment = "// " + comment.removesuffix("*)").strip().replace("UDINT", "UDInt")
            code = f"{code}{comment}" if code.strip() else code + comment
        lines.append(code.rstrip())
    return "\n".join(lines) + "\n"


def array_type(n: int, base: str = "REAL") -> str:
    """``ARRAY[0..n-1] OF base``."""
    return f"ARRAY[0..{n - 1}] OF {base}"


__all__ = ["INPUTS", "LOCALS", "OUTPUTS", "PARAMETER_COMMENTS", "TEMPORARIES", "array_type", "block_name",
           "decisions", "iec_real", "in_words", "iec_time", "parameter_defaults", "scl_statements", "st_statements",
           "summary_lines", "variable_names"]
