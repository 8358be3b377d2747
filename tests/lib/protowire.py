"""protowire.py - the one minimal protobuf wire-format writer of the test tools.

Builds protobuf messages by hand, field by field, with no .proto files and
no generated code, so a tool can write exactly the bytes it wants: valid
OTLP requests as well as the malformed, unusual and edge-case encodings a
real protobuf library would refuse to produce. Every function returns
bytes: varint() and tag() are the raw pieces, each pb_*(field, value) writes
one whole field, key included. A message is the concatenation of its fields, a
submessage is pb_bytes() of its encoding.

Used by:
  fuzz/corpus/make_seeds.py          the hand-made fuzz seeds
  tests/golden/decode_make_cases.py  the generated golden decode cases
  tests/system/collector.py          request bodies of the system tests (the
                                     test_*.py files get these names from it)

They import it with tests/lib on sys.path (set relative to their own file,
after sys.dont_write_bytecode = True so no __pycache__ lands in the tree).
Keep the output of every function byte-for-byte stable: the fuzz seeds and
golden cases above are generated with it and committed. Readers stay with
their only user (collector.py's read_fields); tests/golden/decode_reference.py
keeps its own decoder on purpose, as an independent second implementation.

Python 3 standard library only.
"""

import struct

# Wire types (the low three bits of a field's tag).
WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5


def varint(n):
    """n as a base-128 varint. Negative numbers are taken modulo 2**64, as
    protobuf encodes int32/int64 (ten bytes for any negative value)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field, wire):
    """The key of a field: varint(field << 3 | wire). Any wire type may be
    given, including invalid ones (3, 4, 6, 7) for malformed inputs."""
    return varint(field << 3 | wire)


def pb_varint(field, n):
    """A varint field (int32/64, uint32/64, bool, enum)."""
    return tag(field, WIRE_VARINT) + varint(n)


def pb_bytes(field, data):
    """A length-delimited field (string, bytes, submessage). A str is
    encoded as UTF-8; pass bytes to write anything else (invalid UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return tag(field, WIRE_LEN) + varint(len(data)) + data


def pb_fixed64(field, n):
    """A fixed64 field, n as an unsigned little-endian 64-bit integer."""
    return tag(field, WIRE_FIXED64) + struct.pack("<Q", n)


def pb_fixed32(field, n):
    """A fixed32 field, n as an unsigned little-endian 32-bit integer."""
    return tag(field, WIRE_FIXED32) + struct.pack("<I", n)


def pb_double(field, x):
    """A double field, x as a little-endian IEEE 754 binary64."""
    return tag(field, WIRE_FIXED64) + struct.pack("<d", x)
