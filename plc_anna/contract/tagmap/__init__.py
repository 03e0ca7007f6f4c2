"""The tag map: which PLC tags carry each corrected layer's signals and corrections.

A tag map is a TOML file (``docs/tag-map.md`` documents every key). It names
the controller (``[plc]``: protocol, endpoint, credentials), the write-back
policy (``[link]``), optional device tags (``[device]``: age, temperature) and,
per mapped layer of the network (``[[layer]]``), one tag per role:

========================  =========  ==============================================================
role                      direction  meaning
========================  =========  ==============================================================
``inputs``                read       the layer's digital inputs x (array of ``n_in``)
``raw_outputs``           read       the layer's raw analog outputs y (array of ``n_out``)
``gain_set``              write      the gain set plc-anna writes (array of ``n_out``)
``offset_set``            write      the offset set plc-anna writes (array of ``n_out``)
``commit_counter``        write      incremented with every new set, written last in the batch
``heartbeat``             write      incremented every plc-anna scan
``accepted_commit``       read       the counter of the last set the PLC took
``plc_heartbeat``         read       incremented every PLC cycle
``status``                read       the PLC block's status (0 OK, 1 ramping, 2 holding, 3 rejected)
``fault``                 read       the PLC block's heartbeat-lost fault bit
``applied_gain`` …        read       optional: ``applied_gain``, ``applied_offset``,
                                     ``corrected_outputs`` (arrays of ``n_out``)
``trace_inputs`` …        read       optional ring buffer of the last ``trace_length`` PLC cycles:
                                     ``trace_inputs``, ``trace_raw_outputs``, ``trace_count``
========================  =========  ==============================================================

A tag's address is an OPC UA NodeId string (``"ns=4;s=…"`` or ``"nsu=URI;s=…"``)
for ``protocol = "opcua"`` and a 0-based holding-register number for
``protocol = "modbus"``. Its ``type`` is the PLC's data type (:data:`PLC_TYPES`);
integer types may carry a linear ``scale`` and ``bias`` (engineering value =
raw · scale + bias), as analog cards deliver counts.

This module reads and checks files only; it imports no protocol library.

Examples
--------
>>> import tomllib
>>> text = '''
... [plc]
... protocol = "modbus"
... endpoint = "modbus://127.0.0.1:5020"
... [[layer]]
... index = 0
... inputs = { address = 2448, type = "REAL", length = 2 }
... raw_outputs = { address = 2192, type = "REAL", length = 3 }
... gain_set = { address = 2048, type = "REAL", length = 3 }
... offset_set = { address = 2112, type = "REAL", length = 3 }
... commit_counter = { address = 2176, type = "UDINT" }
... heartbeat = { address = 2178, type = "UDINT" }
... accepted_commit = { address = 2180, type = "UDINT" }
... plc_heartbeat = { address = 2182, type = "UDINT" }
... status = { address = 2184, type = "DINT" }
... fault = { address = 2186, type = "UDINT" }
... '''
>>> tags = parse_tag_map(tomllib.loads(text))
>>> layer = tags.layers[0]
>>> layer.gain_set.address, layer.gain_set.plc_type, layer.gain_set.length, layer.gain_set.registers
(2048, 'REAL', 3, 6)
>>> tags.plc.host, tags.plc.port, tags.link.min_commit_interval_s
('127.0.0.1', 5020, 0.1)
>>> parse_tag_map(tomllib.loads(text.replace('"UDINT" }', '"UDINT", lenght = 2 }', 1)))
Traceback (most recent call last):
...
ValueError: tag map: unknown key 'lenght' in layer[0].commit_counter; valid keys: address, type, length, scale, bias
"""

from __future__ import annotations

from plc_anna.contract.tagmap.model import (ARRAY_ROLES, COUNTER_TYPES, FLOAT_TYPES, FORMAT, OPTIONAL_ROLES, PLC_TYPES,
                                       PROTOCOL_KEYS, PROTOCOLS, REQUIRED_ROLES, SECURITY_POLICIES, TAG_KEYS,
                                       WORD_ORDERS, WRITTEN_ROLES, DeviceTags, LayerTags, LinkSettings, PlcSettings, Tag, TagMap)
from plc_anna.contract.tagmap.read import load_tag_map, parse_tag_map
from plc_anna.contract.tagmap.write import tag_map_to_toml

__all__ = ["ARRAY_ROLES", "COUNTER_TYPES", "FLOAT_TYPES", "FORMAT", "OPTIONAL_ROLES", "PLC_TYPES", "PROTOCOL_KEYS", "PROTOCOLS",
           "REQUIRED_ROLES", "SECURITY_POLICIES", "TAG_KEYS", "WORD_ORDERS", "WRITTEN_ROLES", "DeviceTags",
           "LayerTags", "LinkSettings", "PlcSettings", "Tag", "TagMap", "load_tag_map", "parse_tag_map",
           "tag_map_to_toml"]
