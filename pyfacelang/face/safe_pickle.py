"""A restricted unpickler for official face-model files.

The official FLAME 2020 ``generic_model.pkl`` (and SMPL-family files in
general) was written by Python 2 with chumpy installed: arrays such as
``shapedirs`` are ``chumpy.ch.Ch`` objects and ``J_regressor`` is a
``scipy.sparse.csc_matrix``. Loading such a file with plain ``pickle.load``
needs chumpy (unmaintained, broken on current numpy) and, worse, a pickle can
name any importable callable (``os.system``, ``builtins.eval``, ...) and run it.

`SafeUnpickler` resolves only a small allow-list of globals:

- numpy's array/dtype/scalar reconstructors (both ``numpy.core`` and
  ``numpy._core`` spellings),
- ``chumpy.ch.Ch`` and scipy's csc/csr matrices, mapped to inert stub classes
  that just keep their pickled state,
- a safe ``copy_reg._reconstructor`` that only builds those stubs, and
  ``_codecs.encode`` restricted to latin-1 (how Python 3 pickles ``bytes`` at
  protocol 2),
- a few inert builtins (``object``, ``set``, ``frozenset``, ``complex``).

Anything else raises `UnsafePickleError` naming the refused ``module.name``;
nothing from the file is executed. `load_pickle` then replaces every stub by a
plain (dense) ``np.ndarray``, so callers never see chumpy or scipy types and
neither package is needed.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, BinaryIO, Dict, Tuple, Union

import numpy as np

from ..errors import ModelFileError, UnsafePickleError

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

__all__ = ["SafeUnpickler", "load_pickle", "load_npy_pickled"]


# --------------------------------------------------------------------- stubs
class _Stub:
    """Base of the inert placeholder classes: accepts any constructor
    arguments and stores the pickled state verbatim (no code runs)."""

    def __new__(cls, *args: Any, **kwargs: Any):
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


class ChumpyStub(_Stub):
    """Stands in for ``chumpy.ch.Ch``; its value is the ndarray in state['x']."""

    qualname = "chumpy.ch.Ch"

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state) form
        if not isinstance(state, dict):
            raise ModelFileError(f"{self.qualname} object without a state dict "
                                 f"(got {type(state).__name__})")
        if "x" in state:
            value = _convert(state["x"], {})
            return np.asarray(value)
        for value in state.values():  # tolerate other chumpy layouts
            if isinstance(value, np.ndarray):
                return value
        raise ModelFileError(f"{self.qualname} object holds no array (state keys: {sorted(map(str, state))})")


class _SparseStub(_Stub):
    """Stands in for a scipy compressed sparse matrix; densified by `to_numpy`."""

    qualname = "scipy.sparse matrix"
    #: "csc": indptr runs over columns; "csr": over rows
    major = "csc"

    def to_numpy(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        if not isinstance(state, dict):
            raise ModelFileError(f"{self.qualname} without a state dict")
        try:
            data = np.asarray(state["data"])
            indices = np.asarray(state["indices"]).astype(np.int64)
            indptr = np.asarray(state["indptr"]).astype(np.int64)
            shape = state["_shape"] if "_shape" in state else state["shape"]
        except KeyError as exc:
            raise ModelFileError(f"{self.qualname} state lacks {exc.args[0]!r}") from None
        rows, cols = (int(s) for s in shape)
        n_major = cols if self.major == "csc" else rows
        n_minor = rows if self.major == "csc" else cols
        if (data.ndim != 1 or indices.shape != data.shape or indptr.shape != (n_major + 1,)
                or indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0)
                or (indices.size and (indices.min() < 0 or indices.max() >= n_minor))):
            raise ModelFileError(f"{self.qualname} of shape {(rows, cols)} has inconsistent "
                                 f"data/indices/indptr")
        major_idx = np.repeat(np.arange(n_major), np.diff(indptr))  # (nnz,)
        dense = np.zeros((rows, cols), dtype=data.dtype if data.size else np.float64)
        if self.major == "csc":
            np.add.at(dense, (indices, major_idx), data)
        else:
            np.add.at(dense, (major_idx, indices), data)
        return dense


class CscStub(_SparseStub):
    qualname = "scipy.sparse.csc_matrix"
    major = "csc"


class CsrStub(_SparseStub):
    qualname = "scipy.sparse.csr_matrix"
    major = "csr"


_STUB_TYPES = (ChumpyStub, CscStub, CsrStub)


# ------------------------------------------------------- safe replacements
def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copy_reg._reconstructor`` limited to our stubs on ``object``."""
    if not (isinstance(cls, type) and issubclass(cls, _Stub)) or base is not object:
        raise UnsafePickleError(
            f"refusing copy_reg._reconstructor({getattr(cls, '__name__', cls)!s}, "
            f"{getattr(base, '__name__', base)!s}, ...): only chumpy/scipy stubs on object are allowed")
    return cls.__new__(cls)


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to pickle bytes at protocol <= 2."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin-1", errors)


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    try:  # numpy >= 2 (numpy.core is a deprecated alias there)
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    table: Dict[Tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = multiarray._reconstruct
        table[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(mod, "_frombuffer")] = numeric._frombuffer  # protocol-5 array pickles
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    table[("chumpy.ch", "Ch")] = ChumpyStub
    for mod in ("scipy.sparse.csc", "scipy.sparse._csc"):
        table[(mod, "csc_matrix")] = CscStub
        table[(mod, "csc_array")] = CscStub
    for mod in ("scipy.sparse.csr", "scipy.sparse._csr"):
        table[(mod, "csr_matrix")] = CsrStub
        table[(mod, "csr_array")] = CsrStub
    for mod in ("copy_reg", "copyreg"):
        table[(mod, "_reconstructor")] = _safe_reconstructor
    table[("_codecs", "encode")] = _safe_codecs_encode
    for mod in ("__builtin__", "builtins"):
        for name, value in (("object", object), ("set", set), ("frozenset", frozenset),
                            ("complex", complex)):
            table[(mod, name)] = value
    return table


_ALLOWED: Dict[Tuple[str, str], Any] = _allowed_globals()


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only the allow-listed globals above.

    Use ``encoding="latin1"`` for Python-2 pickles (the default of
    `load_pickle`), which is what numpy needs to restore py2 array buffers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle '{module}.{name}': not on the allow-list for model files "
                f"(numpy arrays, chumpy.ch.Ch, scipy csc/csr matrices)") from None


# ------------------------------------------------------------- conversion
def _convert(obj: Any, memo: Dict[int, Any]) -> Any:
    """Replace stubs by ndarrays recursively through dict/list/tuple/set and
    object-dtype arrays; shared or cyclic containers are converted once."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _STUB_TYPES):
        out: Any = obj.to_numpy()
        memo[key] = out
    elif isinstance(obj, dict):
        out = {}
        memo[key] = out
        for k, v in obj.items():
            out[k] = _convert(v, memo)
    elif isinstance(obj, list):
        out = []
        memo[key] = out
        out.extend(_convert(v, memo) for v in obj)
    elif isinstance(obj, tuple):
        out = tuple(_convert(v, memo) for v in obj)
        memo[key] = out
    elif isinstance(obj, (set, frozenset)):
        out = type(obj)(_convert(v, memo) for v in obj)
        memo[key] = out
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        out = np.empty(obj.shape, dtype=object)
        memo[key] = out
        for idx in np.ndindex(obj.shape):
            out[idx] = _convert(obj[idx], memo)
    else:
        out = obj
    return out


def _source_name(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", "<file object>"))


def _unpickle_stream(fp: BinaryIO, source: str, encoding: str) -> Any:
    try:
        raw = SafeUnpickler(fp, encoding=encoding).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except ModelFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as exc:
        raise ModelFileError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from None
    try:
        return _convert(raw, {})
    except ModelFileError as exc:
        raise ModelFileError(f"{source}: {exc}") from None


def load_pickle(path_or_fileobj: PathOrFile, *, encoding: str = "latin1") -> Any:
    """Safely unpickle a model file (path or binary file object).

    Returns the unpickled object with every ``chumpy.ch.Ch`` replaced by its
    ``np.ndarray`` value and every scipy csc/csr matrix by a dense
    ``np.ndarray``, recursively through dicts, lists and tuples. Raises
    `UnsafePickleError` for a global outside the allow-list and
    `ModelFileError` for a missing or corrupt file."""
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = os.fspath(path_or_fileobj)
        if not os.path.isfile(source):
            raise ModelFileError(f"model file '{source}' not found")
        with open(source, "rb") as fp:
            return _unpickle_stream(fp, source, encoding)
    return _unpickle_stream(path_or_fileobj, _source_name(path_or_fileobj), encoding)


def load_npy_pickled(path: Union[str, "os.PathLike[str]"], *, encoding: str = "latin1") -> Any:
    """Read a ``.npy`` file without ``np.load(allow_pickle=True)``.

    Plain dtypes are returned as the array (``np.load(allow_pickle=False)``).
    Object arrays (e.g. DECA's ``landmark_embedding.npy``, a 0-d object array
    holding a dict) have their pickled payload read with `SafeUnpickler`; a 0-d
    object array is unwrapped to its single element (usually a dict), larger
    object arrays are returned as object ndarrays. Stubs are converted as in
    `load_pickle`."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise ModelFileError(f"model file '{source}' not found")
    from numpy.lib import format as npformat

    with open(source, "rb") as fp:
        try:
            version = npformat.read_magic(fp)
            if version == (1, 0):
                shape, _fortran, dtype = npformat.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _fortran, dtype = npformat.read_array_header_2_0(fp)
            elif hasattr(npformat, "_read_array_header"):  # (3, 0): utf-8 header
                shape, _fortran, dtype = npformat._read_array_header(fp, version)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as exc:
            raise ModelFileError(f"{source}: not a valid .npy file ({exc})") from None
        if dtype.hasobject:
            obj = _unpickle_stream(fp, source, encoding)
            if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == tuple(shape):
                return obj[()] if obj.ndim == 0 else obj
            raise ModelFileError(f"{source}: pickled payload is {type(obj).__name__}, expected an "
                                 f"object array of shape {tuple(shape)}")
    try:
        return np.load(source, allow_pickle=False)
    except ValueError as exc:
        raise ModelFileError(f"{source}: not a valid .npy file ({exc})") from None

