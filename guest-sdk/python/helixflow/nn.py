"""Typed helpers over ``wasi:nn@0.2.0-rc-2024-10-28``: the host runs the model on ONNX
Runtime; the guest names a model from the registry and moves tensors::

    from helixflow.nn import Graph, Tensor

    graph = Graph.load_by_name("all-minilm-l6-v2")
    out = graph.context().compute({
        "input_ids": Tensor.from_i64([1, 4], [101, 7592, 2088, 102]),
        "attention_mask": Tensor.from_i64([1, 4], [1, 1, 1, 1]),
    })
    hidden = out["last_hidden_state"].to_f32()      # a list of floats
    hidden = out["last_hidden_state"].array()       # or an array.array('f'), no copy per element

Tensors are row-major, little-endian bytes. ``from_*`` take any iterable of numbers
(or an ``array.array`` / ``memoryview`` of the right item type, copied once); ``to_*``
give lists, ``array()`` an ``array.array`` and ``view()`` a ``memoryview`` cast to the
element type.
"""

from __future__ import annotations

import array
import struct
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple, Union

from . import _wit


class TensorType(Enum):
    """Element types (the names of wasi:nn's ``tensor-type``)."""

    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BF16 = "BF16"
    U8 = "U8"
    I32 = "I32"
    I64 = "I64"


# (struct format, array typecode) per type; FP16/BF16 have no array typecode.
_FORMATS = {
    TensorType.FP16: ("e", None),
    TensorType.FP32: ("f", "f"),
    TensorType.FP64: ("d", "d"),
    TensorType.BF16: (None, None),
    TensorType.U8: ("B", "B"),
    TensorType.I32: ("i", "i"),
    TensorType.I64: ("q", "q"),
}


class NnError(Exception):
    """A wasi:nn (or helixflow:llm) error: the host's code and message."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _count(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


@dataclass
class Tensor:
    """A tensor on the guest side: type, dimensions, row-major little-endian bytes."""

    ty: TensorType
    dims: List[int]
    data: bytes

    @classmethod
    def from_bytes(cls, ty: TensorType, dims: Sequence[int], data: bytes) -> "Tensor":
        """A tensor from raw bytes (any type, e.g. FP16/BF16 bit patterns)."""
        return cls(ty, list(dims), bytes(data))

    @classmethod
    def _from(cls, ty: TensorType, dims: Sequence[int], values: Any) -> "Tensor":
        fmt, code = _FORMATS[ty]
        n = _count(dims)
        if code is not None:
            if isinstance(values, memoryview):
                values = values.cast("B").cast(code) if values.format != code else values
            a = values if isinstance(values, array.array) and values.typecode == code else array.array(code, values)
            if sys.byteorder != "little":
                a = array.array(code, a)
                a.byteswap()
            data = a.tobytes()
            count = len(a)
        else:
            vals = list(values)
            data = struct.pack(f"<{len(vals)}{fmt}", *vals)
            count = len(vals)
        if count != n:
            raise NnError("invalid-argument", f"{count} values for dimensions {list(dims)} ({n} elements)")
        return cls(ty, list(dims), data)

    @classmethod
    def from_f32(cls, dims: Sequence[int], values: Iterable[float]) -> "Tensor":
        return cls._from(TensorType.FP32, dims, values)

    @classmethod
    def from_f64(cls, dims: Sequence[int], values: Iterable[float]) -> "Tensor":
        return cls._from(TensorType.FP64, dims, values)

    @classmethod
    def from_f16(cls, dims: Sequence[int], values: Iterable[float]) -> "Tensor":
        return cls._from(TensorType.FP16, dims, values)

    @classmethod
    def from_i32(cls, dims: Sequence[int], values: Iterable[int]) -> "Tensor":
        return cls._from(TensorType.I32, dims, values)

    @classmethod
    def from_i64(cls, dims: Sequence[int], values: Iterable[int]) -> "Tensor":
        return cls._from(TensorType.I64, dims, values)

    @classmethod
    def from_u8(cls, dims: Sequence[int], values: Union[bytes, Iterable[int]]) -> "Tensor":
        return cls._from(TensorType.U8, dims, values)

    def _check(self, ty: TensorType) -> None:
        if self.ty != ty:
            raise NnError("invalid-argument", f"tensor is {self.ty.value}, not {ty.value}")

    def array(self) -> array.array:
        """The elements as an ``array.array`` (types with an array typecode)."""
        code = _FORMATS[self.ty][1]
        if code is None:
            raise NnError("invalid-argument", f"{self.ty.value} has no array typecode: use to_list()")
        a = array.array(code)
        a.frombytes(self.data)
        if sys.byteorder != "little":
            a.byteswap()
        return a

    def view(self) -> memoryview:
        """A zero-copy ``memoryview`` cast to the element type (little-endian hosts)."""
        code = _FORMATS[self.ty][1]
        if code is None or sys.byteorder != "little":
            raise NnError("invalid-argument", f"no memoryview of {self.ty.value} here: use array()")
        return memoryview(self.data).cast(code)

    def to_list(self) -> list:
        """The elements as a flat list of Python numbers."""
        fmt = _FORMATS[self.ty][0]
        if fmt is None:  # BF16: the upper half of an f32
            raw = struct.unpack(f"<{len(self.data) // 2}H", self.data)
            return [struct.unpack("<f", struct.pack("<I", r << 16))[0] for r in raw]
        size = struct.calcsize(fmt)
        return list(struct.unpack(f"<{len(self.data) // size}{fmt}", self.data))

    def to_f32(self) -> List[float]:
        self._check(TensorType.FP32)
        return self.array().tolist()

    def to_f64(self) -> List[float]:
        self._check(TensorType.FP64)
        return self.array().tolist()

    def to_i32(self) -> List[int]:
        self._check(TensorType.I32)
        return self.array().tolist()

    def to_i64(self) -> List[int]:
        self._check(TensorType.I64)
        return self.array().tolist()

    def to_u8(self) -> List[int]:
        self._check(TensorType.U8)
        return list(self.data)


def _nn_error(e: Any) -> NnError:
    """An ``NnError`` from a caught ``componentize_py_types.Err``."""
    v = getattr(e, "value", e)
    try:
        code = v.code().name.lower().replace("_", "-")
        return NnError(code, v.data())
    except AttributeError:
        return NnError("unknown", str(v))


def _wit_type(ty: TensorType) -> Any:
    return getattr(_wit.tensor.TensorType, ty.value)


class Graph:
    """A loaded model."""

    def __init__(self, graph: Any):
        self._graph = graph

    @classmethod
    def load_by_name(cls, name: str) -> "Graph":
        """A model from the registry: the caller's tenant's, else a public one.
        ``name`` may pin a version: ``minilm@3``. Raises ``NnError``."""
        _wit.require()
        try:
            return cls(_wit.graph.load_by_name(name))
        except _wit.Err as e:
            raise _nn_error(e) from None

    @classmethod
    def load_onnx(cls, model: bytes) -> "Graph":
        """Model bytes shipped by the guest (only where the host's policy allows it)."""
        _wit.require()
        g = _wit.graph
        try:
            return cls(g.load([model], g.GraphEncoding.ONNX, g.ExecutionTarget.CPU))
        except _wit.Err as e:
            raise _nn_error(e) from None

    def context(self) -> "Context":
        """An execution context (cheap; one per request is fine)."""
        try:
            return Context(self._graph.init_execution_context())
        except _wit.Err as e:
            raise _nn_error(e) from None


class Context:
    """An execution context of a ``Graph``."""

    def __init__(self, ctx: Any):
        self._ctx = ctx

    def compute(self, inputs: Union[Mapping[str, Tensor], Sequence[Tuple[str, Tensor]]]) -> Dict[str, Tensor]:
        """Runs the model on named inputs; returns the named outputs."""
        items = inputs.items() if isinstance(inputs, Mapping) else inputs
        named = [(n, _wit.tensor.Tensor(list(t.dims), _wit_type(t.ty), t.data)) for n, t in items]
        try:
            out = self._ctx.compute(named)
        except _wit.Err as e:
            raise _nn_error(e) from None
        return {n: Tensor(TensorType(t.ty().name), list(t.dimensions()), t.data()) for n, t in out}
