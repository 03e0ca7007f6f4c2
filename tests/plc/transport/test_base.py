"""The transport interface: value encoding and decoding, the registry, error mapping, reconnect delays."""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest

from plc_anna.contract.tagmap import PlcSettings, Tag
from plc_anna.plc.transport import TRANSPORTS, open_transport, transport_class
from plc_anna.plc.transport.base import TagError, TagInfo, Transport, Unreachable, backoff_delays, decode, encode


def real(length=None):
    return Tag(role="gain_set", address=0, plc_type="REAL", length=length)


def test_real_refuses_values_beyond_float32_and_lreal_takes_them():
    with pytest.raises(ValueError, match=r"tag gain_set \(0\): a value exceeds the REAL range ±3\.403e\+38"):
        encode(real(), 1e39)
    lreal = Tag(role="gain_set", address=0, plc_type="LREAL")
    assert encode(lreal, 1e39).tolist() == [1e39]
    assert encode(real(), 0.1).dtype == np.float32


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("plc_type", ["REAL", "LREAL", "DINT", "UDINT", "BOOL"])
def test_nan_and_inf_are_refused(plc_type, value):
    with pytest.raises(ValueError, match="NaN or Inf cannot be written"):
        encode(Tag(role="inputs", address=4, plc_type=plc_type, length=2), [1, value])


def test_integer_scale_and_bias_round_to_the_nearest_count_and_check_the_range():
    counts = Tag(role="inputs", address=0, plc_type="INT", length=3, scale=0.01, bias=-10.0)
    raw = encode(counts, [0.004, 0.006, -10.0])
    assert raw.dtype == np.int16 and raw.tolist() == [1000, 1001, 0]
    np.testing.assert_allclose(decode(counts, raw), [0.0, 0.01, -10.0], atol=1e-12)
    assert encode(counts, [317.67, -337.68, 0]).tolist() == [32767, -32768, 1000]
    with pytest.raises(ValueError, match=r"outside the INT range -32768\.\.32767 after scaling"):
        encode(counts, [317.68, 0, 0])
    with pytest.raises(ValueError, match=r"outside the UDINT range 0\.\.4294967295$"):
        encode(Tag(role="commit_counter", address=0, plc_type="UDINT"), -1)
    assert encode(Tag(role="commit_counter", address=0, plc_type="UDINT"), 4294967295).tolist() == [4294967295]
    with pytest.raises(ValueError, match="UINT range"):
        encode(Tag(role="heartbeat", address=0, plc_type="UINT"), 65536)


def test_bool():
    flag = Tag(role="fault", address=0, plc_type="BOOL")
    assert encode(flag, True).tolist() == [True] and encode(flag, 0).dtype == np.bool_
    assert decode(flag, np.array([True])) is True
    with pytest.raises(ValueError, match=r"outside the BOOL range 0\.\.1"):
        encode(flag, 2)
    flags = Tag(role="fault", address=0, plc_type="BOOL", length=2)
    np.testing.assert_array_equal(decode(flags, encode(flags, [True, False])), [1.0, 0.0])


def test_shapes():
    with pytest.raises(ValueError, match=r"tag gain_set \(0\) takes 3 values, got shape \(2,\)"):
        encode(real(3), [1, 2])
    with pytest.raises(ValueError, match=r"takes one value, got shape \(2,\)"):
        encode(real(), [1, 2])
    assert encode(real(), [2.5]).tolist() == [2.5]  # a one-element list is a scalar
    with pytest.raises(ValueError, match=r"takes 1 values, got shape \(\)"):
        encode(real(1), 2.5)
    with pytest.raises(TagError, match=r"tag gain_set \(0\) should hold 3 values, the PLC sent 2"):
        decode(real(3), np.zeros(2, dtype=np.float32))


def test_decoded_types():
    assert type(decode(real(), np.array([1.5], dtype=np.float32))) is float
    counter = Tag(role="commit_counter", address=0, plc_type="UDINT")
    assert decode(counter, np.array([7], dtype=np.uint32)) == 7
    assert type(decode(counter, np.array([7], dtype=np.uint32))) is int
    scaled = Tag(role="inputs", address=0, plc_type="DINT", scale=0.5)
    assert decode(scaled, np.array([3], dtype=np.int32)) == 1.5
    array = decode(real(2), np.array([1, 2], dtype=np.float32))
    assert array.dtype == np.float64 and array.tolist() == [1.0, 2.0]


def test_registry():
    assert set(TRANSPORTS) == {"opcua", "modbus"}
    with pytest.raises(ValueError, match=r"^unknown PLC protocol 'profinet'; valid protocols: opcua, modbus$"):
        transport_class("profinet")
    modbus = open_transport(PlcSettings(protocol="modbus", endpoint="modbus://127.0.0.1:5020"))
    assert type(modbus).__name__ == "ModbusTransport" and not modbus.connected
    assert type(open_transport(PlcSettings(protocol="opcua", endpoint="opc.tcp://plc:4840"))).__name__ == \
        "OpcUaTransport"
    with pytest.raises(ValueError, match="OpcUaTransport speaks 'opcua', the settings say 'modbus'"):
        transport_class("opcua")(PlcSettings(protocol="modbus", endpoint="modbus://plc"))


def test_backoff_delays_double_up_to_the_maximum():
    assert list(itertools.islice(backoff_delays(0.2, 5.0), 8)) == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert list(itertools.islice(backoff_delays(1.0, 1.0), 3)) == [1.0, 1.0, 1.0]


class Fake(Transport):
    """A transport whose hooks record calls and raise what the test asks."""

    protocol = "modbus"

    def __init__(self, fail: BaseException | None = None) -> None:
        super().__init__(PlcSettings(protocol="modbus", endpoint="modbus://plc:502"))
        self.fail = fail
        self.written: list = []

    async def _connect_hook(self):
        pass

    async def _close_hook(self):
        raise OSError("already gone")

    async def _read_hook(self, tags):
        if self.fail is not None:
            raise self.fail
        return [np.zeros(tag.length or 1, dtype=tag.dtype) for tag in tags]

    async def _write_hook(self, items):
        self.written.append(items)

    async def _describe_hook(self, tags):
        return [TagInfo(tag=tag, exists=True) for tag in tags]


def test_a_bad_value_sends_nothing_and_link_failures_become_unreachable():
    async def body():
        link = Fake()
        with pytest.raises(Unreachable, match="modbus://plc:502: not connected"):
            await link.read([real()])
        await link.connect()
        with pytest.raises(ValueError, match="NaN"):
            await link.write([(real(), 1.0), (Tag(role="offset_set", address=2, plc_type="REAL"), math.nan)])
        assert link.written == []
        assert await link.read([real(2)]) == [pytest.approx([0.0, 0.0])]
        link.fail = TimeoutError()
        with pytest.raises(Unreachable, match=r"^modbus://plc:502: read failed: TimeoutError$"):
            await link.read([real()])
        assert not link.connected
        await link.connect()
        link.fail = ConnectionResetError(104, "Connection reset by peer")
        with pytest.raises(Unreachable, match="read failed: .*Connection reset by peer"):
            await link.read([real()])
        assert not link.connected
        await link.connect()
        await link.close()  # the hook's error is swallowed
        await link.close()
        assert not link.connected

    asyncio.run(body())
