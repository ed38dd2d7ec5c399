"""A small safetensors reader (numpy only; Debian 12 has no python3-safetensors): what
`netdiffus export MODEL.ndm --safetensors OUT` writes, and any file of the format with
float, integer or bool tensors (https://github.com/huggingface/safetensors: an 8-byte
little-endian header length, a JSON header, then the tensors' bytes)."""
import json
import struct

import numpy as np

from .container import FormatError

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
           "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
           "BOOL": "?"}


def read_safetensors(path):
    """(tensors, metadata): a dict name -> numpy array (native byte order, in the file's
    order) and the header's "__metadata__" dict of strings. FormatError (section None)
    when the file is truncated or its header does not describe its bytes."""
    with open(path, "rb") as f:
        data = f.read()

    def fail(reason, problem):
        raise FormatError(path, None, reason, problem)

    if len(data) < 8:
        fail("truncated", f"truncated: {len(data)} bytes, shorter than the 8-byte header length")
    n = struct.unpack_from("<Q", data, 0)[0]
    if n > len(data) - 8:
        fail("truncated", f"truncated: the header declares {n} bytes, {len(data) - 8} remain")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail("foreign", f"not a safetensors file (its header is not JSON: {e})")
    if not isinstance(header, dict):
        fail("foreign", "not a safetensors file (its header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    tensors, spans = {}, []
    for name, t in header.items():
        try:
            dtype = np.dtype(_DTYPES[t["dtype"]])
            shape = tuple(int(d) for d in t["shape"])
            a, b = (int(v) for v in t["data_offsets"])
        except (KeyError, TypeError, ValueError):
            fail("invalid", f"tensor '{name}': no dtype, shape or data_offsets this reader "
                 "knows")
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape, default=0) < 0 or not 0 <= a <= b <= len(body) \
                or b - a != count * dtype.itemsize:
            fail("truncated" if b > len(body) else "invalid",
                 f"tensor '{name}': bytes {a}..{b} do not hold {shape} {t['dtype']} within the "
                 f"{len(body)} data bytes")
        spans.append((a, b))
        tensors[name] = np.frombuffer(body[a:b], dtype=dtype).astype(dtype.newbyteorder("="))\
            .reshape(shape)
    spans.sort()
    if any(p[1] != q[0] for p, q in zip(spans, spans[1:])) or (spans and spans[-1][1]
                                                                != len(body)):
        fail("invalid", "the tensors' byte ranges overlap or leave gaps")
    return tensors, meta
