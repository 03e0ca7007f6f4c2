"""Commissioning a PLC link on site, step by step (``plc-anna commission``; ``docs/commissioning.md``).

Each step is a plain async function over the transports (``save_baseline`` is
synchronous: it only touches the state store). They print nothing and return
dataclasses and dicts, so the command line, a script or a test drive them alike:

1. :func:`discover` -- what the PLC at a URL offers (OPC UA endpoints, security, login types;
   Modbus: whether a TCP connection succeeds).
2. :func:`browse` -- the PLC's variables (OPC UA).
3. :func:`draft_tag_map` -- a tag map from those variables, matched to the network's layers.
4. :func:`validate` -- the map against the network and the PLC: tags, types, lengths, write access,
   current values, a running PLC program. Reads only.
5. :func:`calibrate` -- the compensator's fingerprint from the PLC's live samples.
6. :func:`save_baseline` -- that state in the store ``plc-anna serve`` restores.
7. :func:`plan_commit` -- the dry run of the first commit.
8. :func:`commit_and_verify` -- the commit, and what the PLC took.

A dry run keeps its calibration for the run (:func:`keep_calibration`, :func:`kept_calibration`,
:mod:`plc_anna.commission.kept`), so the plan reviewed is the plan committed.

Credentials: :func:`settings_for_url` builds ``[plc]`` settings for a bare URL,
:func:`tag_map_with_credentials` applies a user, password and timeout given on
the command line to a map (a password given so replaces ``password_env`` and is
never written to a file).

This module imports no command-line library.
"""

from __future__ import annotations

from plc_anna.commission.base import Check, settings_for_url, tag_map_with_credentials, with_credentials
from plc_anna.commission.calibrate import CalibrationTimeout, calibrate, save_baseline
from plc_anna.commission.commit import commit_and_verify, plan_commit
from plc_anna.commission.draft import browse, discover, draft_tag_map
from plc_anna.commission.kept import calibration_path, keep_calibration, kept_calibration
from plc_anna.commission.validate import validate

__all__ = ["CalibrationTimeout", "Check", "browse", "calibrate", "calibration_path", "commit_and_verify", "discover",
           "draft_tag_map", "keep_calibration", "kept_calibration", "plan_commit", "save_baseline", "settings_for_url",
           "tag_map_with_credentials", "validate", "with_credentials"]
