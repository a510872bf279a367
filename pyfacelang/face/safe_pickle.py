"""A restricted unpickler for official face-model files.

FLAME 2020's ``generic_model.pkl`` was written by Python 2 with chumpy: arrays
are ``chumpy.ch.Ch`` objects, ``J_regressor`` a ``scipy.sparse.csc_matrix``.
Plain ``pickle.load`` needs chumpy and lets a file call any function.

`SafeUnpickler` resolves a small allow-list of globals, each an inert stub that
records its arguments and BUILD state, so no numpy/scipy/chumpy code sees file
data (numpy's C reconstructors trust their state: short object lists, forged
dtype flags or overlapping fields crash the interpreter or forge pointers).
`load_pickle` then rebuilds arrays in Python from validated pieces (plain
dtypes, exact buffer lengths and item counts, bounded sizes) and densifies the
chumpy/scipy stubs, each once, refusing cycles and deep nesting. Also allowed:
``copy_reg._reconstructor`` (stubs only), ``_codecs.encode`` (latin-1 str),
``bytes`` (none or a string), ``complex`` (numbers), ``set``/``frozenset``.
Anything else, or BUILD on a bare global, raises `UnsafePickleError`; every
failure is a one-line `ModelFileError` naming the file.
"""
from __future__ import annotations

import functools
import io
import math
import os
import pickle
import pickletools
import re
from typing import Any, BinaryIO, Dict, Tuple, Union

import numpy as np

from ..errors import ModelFileError, UnsafePickleError

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

__all__ = ["SafeUnpickler", "load_pickle", "load_npy_pickled"]

#: limits on the arrays rebuilt from one file (the largest official FLAME
#: array, shapedirs, has 5023 * 3 * 400 ~ 6M elements)
MAX_ARRAY_ELEMENTS = 50_000_000
MAX_ARRAY_BYTES = 1 << 30
MAX_TOTAL_ELEMENTS = 100_000_000
MAX_TOTAL_BYTES = 2 << 30
#: Python numbers/lists one nested list -> ndarray conversion may walk
MAX_SEQUENCE_NODES = 1_000_000
#: nesting depth of containers and stubs
MAX_DEPTH = 64

_MISSING, _BUSY = object(), object()
_ATOMS = (type(None), bool, int, float, complex, str, bytes, bytearray)
_NUMBERS = (bool, int, float, complex)
_DTYPE_SPEC = re.compile(r"([biufcOSU])([0-9]{1,9})\Z")


# --------------------------------------------------------------------- stubs
def _refuse_build(owner: type, *_args: Any) -> None:
    raise UnsafePickleError(f"refusing BUILD on the global '{owner.qualname}' itself")


class _BuildHook:
    """``__setstate__`` of the stubs: BUILD on an instance goes to its
    ``_set_state``; BUILD on a bare global (a stub class) is refused."""

    def __get__(self, inst: Any, owner: type) -> Any:
        return inst._set_state if inst is not None else functools.partial(_refuse_build, owner)


class _Stub:
    """Base of the inert placeholders: records constructor arguments and
    (where the real class takes one) the BUILD state; no code runs."""

    qualname, takes_state = "stub", False
    __setstate__ = _BuildHook()

    def __new__(cls, *args: Any, **kwargs: Any):
        self = object.__new__(cls)
        self.args, self.kwargs = args, kwargs
        return self

    def _set_state(self, state: Any) -> None:
        if not self.takes_state:
            raise UnsafePickleError(f"refusing BUILD on a {self.qualname} result")
        if "state" in self.__dict__:
            raise ModelFileError(f"{self.qualname} object given a state twice")
        self.state = state

    def _state_dict(self) -> Dict[Any, Any]:
        state = self.__dict__.get("state")
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state) form
        if not isinstance(state, dict):
            raise ModelFileError(f"{self.qualname} object without a state dict (got {type(state).__name__})")
        return state

    def _get(self, state: Dict[Any, Any], key: str) -> Any:
        """state[key], also under the bytes key of ``encoding='bytes'`` pickles."""
        for k in (key, key.encode()):
            if k in state:
                return state[k]
        raise ModelFileError(f"{self.qualname} object has no {key!r} "
                             f"(state keys: {', '.join(sorted(map(str, state))[:10])})")

    def to_numpy(self) -> Any:
        """This stub's value, converted on its own (see `load_pickle`)."""
        return _Converter()(self)


class ChumpyStub(_Stub):
    """Stands in for ``chumpy.ch.Ch``; its value is the array in state['x']."""

    qualname, takes_state = "chumpy.ch.Ch", True

    def _rebuild(self, conv: "_Converter", depth: int) -> np.ndarray:
        x = self._get(self._state_dict(), "x")
        return conv.as_array(conv(x, depth), f"{self.qualname} value 'x'", "biufc")


class _SparseStub(_Stub):
    """Stands in for a scipy compressed sparse matrix; densified on conversion."""

    qualname, takes_state = "scipy.sparse matrix", True
    major = "csc"  # "csc": indptr runs over columns; "csr": over rows

    def _rebuild(self, conv: "_Converter", depth: int) -> np.ndarray:
        state, name = self._state_dict(), self.qualname
        data, indices, indptr = (conv.as_array(conv(self._get(state, key), depth), f"{name} {key}", kinds)
                                 for key, kinds in (("data", "biufc"), ("indices", "iu"), ("indptr", "iu")))
        shape = conv(self._get(state, "_shape" if "_shape" in state or b"_shape" in state else "shape"), depth)
        if not (type(shape) is tuple and len(shape) == 2 and all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise ModelFileError(f"{name} has shape {_short(shape)}, expected two non-negative integers")
        rows, cols = int(shape[0]), int(shape[1])
        n_major, n_minor = (cols, rows) if self.major == "csc" else (rows, cols)
        indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
        if (data.ndim != 1 or indices.shape != data.shape or indptr.shape != (n_major + 1,)
                or indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0)
                or (indices.size and (indices.min() < 0 or indices.max() >= n_minor))):
            raise ModelFileError(f"{name} of shape {(rows, cols)} has inconsistent data/indices/indptr")
        dtype = data.dtype if data.size else np.dtype(np.float64)
        conv.charge(rows * cols, rows * cols * dtype.itemsize, f"dense {name} of shape {(rows, cols)}")
        major_idx = np.repeat(np.arange(n_major), np.diff(indptr))  # (nnz,)
        dense = np.zeros((rows, cols), dtype=dtype)
        np.add.at(dense, (indices, major_idx) if self.major == "csc" else (major_idx, indices), data)
        return dense


CscStub = type("CscStub", (_SparseStub,), {"qualname": "scipy.sparse.csc_matrix", "major": "csc"})
CsrStub = type("CsrStub", (_SparseStub,), {"qualname": "scipy.sparse.csr_matrix", "major": "csr"})


class _DtypeStub(_Stub):
    """``numpy.dtype(spec, align, copy)`` + BUILD state -> a fresh plain np.dtype
    (file-provided flags, fields, sub-arrays and sizes never reach numpy)."""

    qualname, takes_state = "numpy.dtype", True

    def _rebuild(self, conv: "_Converter", depth: int) -> np.dtype:
        spec = _text(self.args[0]) if self.args and len(self.args) <= 3 and not self.kwargs else None
        m = _DTYPE_SPEC.match(spec) if spec is not None else None
        kind, size = (m.group(1), int(m.group(2))) if m else ("", 0)
        if not (kind == "O" and size in (4, 8) or kind not in ("", "O") and 0 < size <= 1 << 24):
            raise ModelFileError(f"unsupported numpy dtype {_short(self.args[:1])}: only plain bool, integer, "
                                 f"float, complex, object, bytes and str dtypes are allowed")
        try:
            dt = np.dtype(object) if kind == "O" else np.dtype(spec)
        except TypeError:
            raise ModelFileError(f"unsupported numpy dtype {spec!r}") from None
        state = self.__dict__.get("state", _MISSING)
        if state is _MISSING:
            return dt
        if not (type(state) is tuple and len(state) in (8, 9) and type(state[0]) is int and state[0] in (3, 4)):
            raise ModelFileError(f"numpy dtype {spec!r} has an unsupported state {_short(state)}")
        order, elsize = _text(state[1]), state[5]
        if state[2] is not None or state[3] is not None or state[4] is not None:
            raise ModelFileError(f"numpy dtype {spec!r} with sub-arrays or named fields is not supported")
        if (order not in ("<", ">", "|", "=") or type(elsize) is not int or elsize not in (-1, dt.itemsize)
                or (len(state) == 9 and not isinstance(state[8], (dict, type(None))))):
            raise ModelFileError(f"numpy dtype {spec!r} has an inconsistent state {_short(state)}")
        if order in ("<", ">") and dt.kind in "iufcU":
            dt = dt.newbyteorder(order)
        return dt


class _ArrayStub(_Stub):
    """``_reconstruct(numpy.ndarray, shape, typecode)`` + BUILD state
    ``(version, shape, dtype, is_fortran, raw bytes or object list)``."""

    qualname, takes_state = "numpy.core.multiarray._reconstruct", True

    def _rebuild(self, conv: "_Converter", depth: int) -> np.ndarray:
        if len(self.args) != 3 or self.args[0] is not _NdarrayMarker or self.kwargs:
            raise ModelFileError(f"{self.qualname} must be called as (numpy.ndarray, shape, typecode)")
        state = self.__dict__.get("state", _MISSING)
        if type(state) is tuple and len(state) == 5 and type(state[0]) is int:
            state = state[1:]
        if not (type(state) is tuple and len(state) == 4):
            raise ModelFileError("numpy array with a missing or malformed state "
                                 f"{'' if state is _MISSING else _short(state)}")
        shape, dtype, fortran, raw = state
        if type(fortran) not in (bool, int):
            raise ModelFileError(f"numpy array with a non-boolean Fortran flag {_short(fortran)}")
        return conv.make_array(raw, dtype, shape, bool(fortran), depth)


class _FrombufferStub(_Stub):
    """``_frombuffer(buffer, dtype, shape, order)`` (protocol-5 array pickles)."""

    qualname = "numpy.core.numeric._frombuffer"

    def _rebuild(self, conv: "_Converter", depth: int) -> np.ndarray:
        if len(self.args) != 4 or self.kwargs or _text(self.args[3]) not in ("C", "F"):
            raise ModelFileError(f"{self.qualname} must be called as (buffer, dtype, shape, 'C' or 'F')")
        buf, dtype, shape, order = self.args
        return conv.make_array(buf, dtype, shape, _text(order) == "F", depth, raw_only=True)


class _ScalarStub(_Stub):
    """``scalar(dtype, raw bytes)`` (or ``scalar(object dtype, item)``)."""

    qualname = "numpy.core.multiarray.scalar"

    def _rebuild(self, conv: "_Converter", depth: int) -> Any:
        if not 1 <= len(self.args) <= 2 or self.kwargs:
            raise ModelFileError(f"{self.qualname} must be called as (dtype, data)")
        dt = conv.dtype(self.args[0], depth)
        obj = self.args[1] if len(self.args) == 2 else None
        if dt.kind == "O":
            return conv(obj, depth)
        raw = _raw_bytes(obj, "numpy scalar")
        if len(raw) != dt.itemsize:
            raise ModelFileError(f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=dt)[0]


def _func_stub(qualname: str, fn: Any) -> type:
    """A stub class for an allowed function or builtin: calling it returns
    ``fn(*args)`` (which checks the arguments); BUILD on it is refused."""
    return type(qualname, (_Stub,), {"qualname": qualname, "__doc__": fn.__doc__,
                                     "__new__": lambda cls, *args, **kwargs: fn(*args, **kwargs)})


def _refuse(qualname: str, args: Any, allowed: str) -> UnsafePickleError:
    return UnsafePickleError(f"refusing {qualname}{_short(args)}: only {allowed} is allowed")


def _latin1(text: str, what: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise ModelFileError(f"{what}: string is not latin-1") from None


def _not_callable(qualname: str) -> type:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(f"refusing to call {qualname}")
    return _func_stub(qualname, refuse)


#: ``numpy.ndarray`` / ``object``: only valid as arguments of _reconstruct(ors)
_NdarrayMarker, _ObjectMarker = _not_callable("numpy.ndarray"), _not_callable("builtins.object")


def _reconstructor(*args: Any, **kwargs: Any) -> Any:
    """``copy_reg._reconstructor(cls, object, None)`` for the chumpy/scipy stubs."""
    if (kwargs or len(args) != 3 or not isinstance(args[0], type) or args[1] is not _ObjectMarker
            or not issubclass(args[0], (ChumpyStub, _SparseStub)) or args[2] is not None):
        raise UnsafePickleError(f"refusing copy_reg._reconstructor({', '.join(_describe(a) for a in args)}): "
                                f"only chumpy/scipy stubs on object are allowed")
    return args[0].__new__(args[0])


def _codecs_encode(*args: Any, **kwargs: Any) -> bytes:
    if (kwargs or len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str)
            or args[1].lower().replace("_", "-") not in ("latin1", "latin-1")):
        raise _refuse("_codecs.encode", args, "encode(str, 'latin1')")
    return _latin1(args[0], "_codecs.encode")


def _bytes(*args: Any, **kwargs: Any) -> bytes:
    if (kwargs or len(args) > 2 or (args and not isinstance(args[0], (str, bytes)))
            or (len(args) == 2 and _text(args[1]) not in ("latin1", "latin-1", "ascii"))):
        raise _refuse("builtins.bytes", args, "bytes() or bytes(str)")
    return _latin1(args[0], "builtins.bytes") if args and isinstance(args[0], str) else bytes(*args[:1])


def _complex(*args: Any, **kwargs: Any) -> complex:
    if kwargs or len(args) > 2 or not all(type(a) in (int, float) for a in args):
        raise _refuse("builtins.complex", args, "complex(number, number)")
    return complex(*args)


def _set_stub(kind: type) -> type:
    def make(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) > 1 or (args and type(args[0]) not in (list, tuple, set, frozenset)):
            raise _refuse(f"builtins.{kind.__name__}", args, "a list of items")
        return kind(*args)
    return _func_stub(f"builtins.{kind.__name__}", make)


def _allowed_globals() -> Dict[Tuple[str, str], type]:
    table: Dict[Tuple[str, str], type] = {
        ("numpy", "ndarray"): _NdarrayMarker, ("numpy", "dtype"): _DtypeStub, ("chumpy.ch", "Ch"): ChumpyStub,
        ("_codecs", "encode"): _func_stub("_codecs.encode", _codecs_encode)}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _ArrayStub
        table[(f"{core}.multiarray", "scalar")] = _ScalarStub
        table[(f"{core}.numeric", "_frombuffer")] = _FrombufferStub
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        table[(mod, "csc_matrix")] = table[(mod, "csc_array")] = CscStub
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        table[(mod, "csr_matrix")] = table[(mod, "csr_array")] = CsrStub
    table[("copy_reg", "_reconstructor")] = table[("copyreg", "_reconstructor")] = \
        _func_stub("copy_reg._reconstructor", _reconstructor)
    for name, stub in (("object", _ObjectMarker), ("set", _set_stub(set)), ("frozenset", _set_stub(frozenset)),
                       ("complex", _func_stub("builtins.complex", _complex)),
                       ("bytes", _func_stub("builtins.bytes", _bytes))):
        table[("__builtin__", name)] = table[("builtins", name)] = stub
    return table


_ALLOWED: Dict[Tuple[str, str], type] = _allowed_globals()


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` resolving only the allow-listed stubs above (convert
    its result as `load_pickle` does); use ``encoding="latin1"`` for py2 files."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle '{module}.{name}': not on the allow-list for model files "
                f"(numpy arrays, chumpy.ch.Ch, scipy csc/csr matrices)") from None


# ------------------------------------------------------------- conversion
def _text(value: Any) -> Any:
    """A str (bytes decoded as latin-1), or None for anything else."""
    return value.decode("latin-1") if isinstance(value, bytes) else value if isinstance(value, str) else None


def _short(value: Any) -> str:
    text = repr(value) if type(value) in _ATOMS + (tuple, list, dict) else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _raw_bytes(raw: Any, what: str) -> Any:
    if isinstance(raw, (bytes, bytearray)):
        return raw
    if isinstance(raw, str):  # a Python-2 str read with encoding='latin1'
        return _latin1(raw, what)
    raise ModelFileError(f"{what}: data is a {_describe(raw)}, expected bytes")


def _shape(shape: Any) -> Tuple[int, ...]:
    shape = (shape,) if type(shape) is int else shape
    if type(shape) not in (tuple, list) or len(shape) > 32 or not all(type(s) is int and s >= 0 for s in shape):
        raise ModelFileError(f"numpy array with an invalid shape {_short(shape)}")
    return tuple(shape)


def _is_key(value: Any) -> bool:
    """Hashable plain values allowed as dict keys and set items."""
    if type(value) is tuple:
        return all(_is_key(v) for v in value)
    return type(value) in _ATOMS[:-1] or (isinstance(value, np.generic) and value.dtype.kind != "O")


def _describe(obj: Any) -> str:
    if isinstance(obj, type) and issubclass(obj, _Stub):
        return f"bare reference to '{obj.qualname}'"
    return f"{getattr(obj, 'qualname', type(obj).__name__)} object"


class _Converter:
    """Replaces stubs by ndarrays through dicts, lists, tuples, sets and object
    arrays with one memo for the whole file: every stub and container is
    converted once (shared substructure stays linear), cycles and deep
    nesting are refused, and the arrays built are counted against limits."""

    def __init__(self) -> None:
        self.memo: Dict[int, Tuple[Any, Any]] = {}
        self.sizes: Dict[int, Tuple[int, int]] = {}
        self.total_elements = self.total_bytes = 0

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        if type(obj) in _ATOMS:
            return obj
        if depth >= MAX_DEPTH:
            raise ModelFileError(f"objects nested more than {MAX_DEPTH} levels deep")
        key = id(obj)
        if key in self.memo:
            if self.memo[key][1] is _BUSY:
                raise ModelFileError(f"cyclic reference through a {_describe(obj)}")
            return self.memo[key][1]
        self.memo[key] = (obj, _BUSY)  # holding obj keeps its id unique
        out = self._convert(obj, depth + 1)
        self.memo[key] = (obj, out)
        return out

    def _convert(self, obj: Any, depth: int) -> Any:
        t = type(obj)
        if t is dict:
            return {self._key(k, depth): self(v, depth) for k, v in obj.items()}
        if t in (list, tuple):
            return t(self(v, depth) for v in obj)
        if t in (set, frozenset):
            return t(self._key(v, depth) for v in obj)
        if isinstance(obj, _Stub):
            return obj._rebuild(self, depth)
        raise ModelFileError(f"unexpected {_describe(obj)} in the pickle")

    def _key(self, key: Any, depth: int) -> Any:
        if not _is_key(out := self(key, depth)):
            raise ModelFileError(f"a dict key or set item is a {type(out).__name__}, expected a plain value")
        return out

    def charge(self, elements: int, nbytes: int, what: str) -> None:
        """Count an array about to be allocated against the limits."""
        self.total_elements += elements
        self.total_bytes += nbytes
        if elements > MAX_ARRAY_ELEMENTS or nbytes > MAX_ARRAY_BYTES:
            raise ModelFileError(f"{what} has {elements} elements ({nbytes} bytes), over the limit of "
                                 f"{MAX_ARRAY_ELEMENTS} elements / {MAX_ARRAY_BYTES} bytes per array")
        if self.total_elements > MAX_TOTAL_ELEMENTS or self.total_bytes > MAX_TOTAL_BYTES:
            raise ModelFileError(f"arrays total over {MAX_TOTAL_ELEMENTS} elements / {MAX_TOTAL_BYTES} bytes")

    def dtype(self, stub: Any, depth: int) -> np.dtype:
        if not isinstance(stub, _DtypeStub):
            raise ModelFileError(f"numpy array or scalar with a {_describe(stub)} as dtype")
        return self(stub, depth)

    def make_array(self, raw: Any, dtype: Any, shape: Any, fortran: bool, depth: int,
                   raw_only: bool = False) -> np.ndarray:
        """An ndarray from validated pieces: exactly ``prod(shape) * itemsize``
        raw bytes, or (object dtype) a list of exactly ``prod(shape)`` items."""
        dt, shape = self.dtype(dtype, depth), _shape(shape)
        n = math.prod(shape)
        self.charge(n, n * dt.itemsize, f"numpy array of shape {shape} and dtype {dt}")
        if dt.kind == "O":
            if raw_only:
                raise ModelFileError("refusing an object array built from raw bytes (numpy never pickles one)")
            if type(raw) is not list or len(raw) != n:
                got = f"a list of {len(raw)} items" if type(raw) is list else _describe(raw)
                raise ModelFileError(f"object array of shape {shape} needs a list of exactly {n} items, got {got}")
            flat = np.empty(n, dtype=object)
            for i, item in enumerate(raw):  # numpy fills object arrays in C (logical) order
                flat[i] = self(item, depth)
            out = flat.reshape(shape)
            return np.asfortranarray(out) if fortran and out.ndim > 1 else out
        data = _raw_bytes(raw, f"numpy array of dtype {dt}")
        if len(data) != n * dt.itemsize:
            raise ModelFileError(f"numpy array of shape {shape} and dtype {dt} needs {n * dt.itemsize} bytes, "
                                 f"got {len(data)}")
        order = "F" if fortran else "C"
        native = dt if raw_only or dt.isnative else dt.newbyteorder("=")  # as numpy: _reconstruct swaps
        if n == 0:
            return np.empty(shape, dtype=native, order=order)
        return np.frombuffer(data, dtype=dt, count=n).reshape(shape, order=order).astype(native, order="K")

    def _seq_stats(self, value: Any) -> Tuple[int, int]:
        """(elements, Python nodes) that np.asarray(value) would produce / walk."""
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            return value.size, 1
        if type(value) in _NUMBERS or (isinstance(value, np.generic) and value.dtype.kind in "biufc"):
            return 1, 1
        if type(value) not in (list, tuple):
            raise ModelFileError(f"a {type(value).__name__} inside a list that should hold numbers")
        if id(value) not in self.sizes:  # converted lists are memoized, hence alive: ids stay unique
            stats = [self._seq_stats(v) for v in value]
            self.sizes[id(value)] = (sum(s[0] for s in stats), 1 + sum(s[1] for s in stats))
        return self.sizes[id(value)]

    def as_array(self, value: Any, what: str, kinds: str) -> np.ndarray:
        """A converted value as an ndarray whose dtype kind is in `kinds`."""
        if isinstance(value, np.ndarray):
            arr = value
        elif type(value) in (list, tuple) + _NUMBERS or isinstance(value, np.generic):
            elements, nodes = self._seq_stats(value)
            if nodes > MAX_SEQUENCE_NODES:
                raise ModelFileError(f"{what} is a nested list of over {MAX_SEQUENCE_NODES} items")
            self.charge(elements, elements * 16, what)
            try:
                arr = np.asarray(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ModelFileError(f"{what} is not a regular array ({_one_line(exc)})") from None
        else:
            raise ModelFileError(f"{what} is a {_describe(value)}, expected an array")
        if arr.dtype.kind not in kinds:
            raise ModelFileError(f"{what} has dtype {arr.dtype}, expected {'integers' if kinds == 'iu' else 'numbers'}")
        return arr


# ------------------------------------------------------------------ loading
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _scan_opcodes(data: bytes) -> int:
    """Walk the opcodes without building anything (pickletools) and return the
    pickle's length. CPython's unpickler grows its memo table to the largest
    PUT index (a 12-byte file could take gigabytes) and allocates counted
    strings before reading them: both are refused here first."""
    pos = 0
    for count, (op, arg, pos) in enumerate(pickletools.genops(data), 1):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg <= count:
            raise ModelFileError(f"pickle memo index {arg} at byte {pos} is out of sequence")
    return pos + 1


def _unpickle_stream(fp: BinaryIO, source: str, encoding: str) -> Any:
    try:
        start = fp.tell() if getattr(fp, "seekable", lambda: False)() else None
        data = fp.read()
        length = _scan_opcodes(data)  # counted lengths are checked against the data here
        raw = SafeUnpickler(io.BytesIO(data), encoding=encoding).load()
        if start is not None:
            fp.seek(start + length)  # leave the stream after the pickle, as pickle.load does
        return _Converter()(raw)
    except ModelFileError as exc:  # UnsafePickleError included: keep the type
        raise type(exc)(f"{source}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - no file code runs; any failure means a bad file
        raise ModelFileError(f"{source}: not a readable model pickle ({type(exc).__name__}: "
                             f"{_one_line(exc)})") from None


def _open(source: str) -> BinaryIO:
    if not os.path.isfile(source):
        raise ModelFileError(f"model file '{source}' not found")
    try:
        return open(source, "rb")
    except OSError as exc:
        raise ModelFileError(f"model file '{source}' cannot be opened ({_one_line(exc)})") from None


def read_npy_header(fp: BinaryIO) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` stream at `fp` (numpy's own
    header parser, bounded header size); leaves `fp` at the data."""
    from numpy.lib import format as npformat

    version = npformat.read_magic(fp)
    if version in ((1, 0), (2, 0)):
        return getattr(npformat, f"read_array_header_{version[0]}_0")(fp)
    if hasattr(npformat, "_read_array_header"):  # (3, 0): utf-8 header (numpy 1.x)
        return npformat._read_array_header(fp, version)
    raise ValueError(f"unsupported .npy format version {version}")


def load_pickle(path_or_fileobj: PathOrFile, *, encoding: str = "latin1") -> Any:
    """Safely unpickle a model file (path or binary file object): numpy arrays
    rebuilt from validated data, ``chumpy.ch.Ch`` replaced by its ndarray value
    and scipy csc/csr matrices by dense ndarrays, through dicts/lists/tuples.
    `UnsafePickleError` for a global outside the allow-list, `ModelFileError`
    for a missing, corrupt or oversized file."""
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = os.fspath(path_or_fileobj)
        with _open(source) as fp:
            return _unpickle_stream(fp, source, encoding)
    return _unpickle_stream(path_or_fileobj, str(getattr(path_or_fileobj, "name", "<file object>")), encoding)


def load_npy_pickled(path: Union[str, "os.PathLike[str]"], *, encoding: str = "latin1") -> Any:
    """Read a ``.npy`` file without ``np.load(allow_pickle=True)``: plain dtypes
    via ``np.load(allow_pickle=False)``; object arrays (e.g. DECA's
    ``landmark_embedding.npy``, a 0-d array holding a dict) through
    `load_pickle`'s rules, a 0-d one unwrapped to its element."""
    source = os.fspath(path)
    with _open(source) as fp:
        try:
            shape, _fortran, dtype = read_npy_header(fp)
            n_bytes, remaining = math.prod(shape) * dtype.itemsize, os.fstat(fp.fileno()).st_size - fp.tell()
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{source}: not a valid .npy file ({_one_line(exc)})") from None
        if dtype.hasobject:
            obj = _unpickle_stream(fp, source, encoding)
            if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == tuple(shape):
                return obj[()] if obj.ndim == 0 else obj
            raise ModelFileError(f"{source}: pickled payload is {type(obj).__name__}, expected an "
                                 f"object array of shape {tuple(shape)}")
    if n_bytes > remaining:
        raise ModelFileError(f"{source}: truncated .npy file (the header promises {n_bytes} bytes of data, "
                             f"{remaining} follow)")
    try:
        return np.load(source, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{source}: not a valid .npy file ({_one_line(exc)})") from None
