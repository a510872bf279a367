"""The restricted unpickler against hostile files (hand-assembled opcodes):
memory-unsafe numpy state, tiny files that would allocate or loop for long,
errors that must surface as one-line ModelFileError, and legitimate numpy
pickles (every protocol, orders, byte orders, object arrays, scalars) that must
load to exactly what pickle itself gives."""
from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pyfacelang.errors import FaceLangError, ModelFileError, UnsafePickleError
from pyfacelang.face import safe_pickle
from pyfacelang.face.flame import load_flame
from pyfacelang.face.safe_pickle import load_npy_pickled, load_pickle

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ opcode helpers
def G(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def U(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def B(b):
    return b"B" + struct.pack("<I", len(b)) + b


def I(n):
    return b"J" + struct.pack("<i", n)


NONE, TRUE, FALSE, MARK, TUPLE, T1, T2, T3 = b"N", b"\x88", b"\x89", b"(", b"t", b"\x85", b"\x86", b"\x87"
REDUCE, BUILD, STOP, EMPTY_DICT, SETITEM, EMPTY_LIST, APPEND = b"R", b"b", b".", b"}", b"s", b"]", b"a"
PROTO = b"\x80\x04"
MA, NUM = "numpy.core.multiarray", "numpy.core.numeric"


def dtype(spec, order="|", fields=NONE, names=NONE, sub=NONE, elsize=-1, flags=0, align=False):
    """numpy.dtype(spec, align, True) + BUILD (3, order, sub, names, fields, elsize, -1, flags)."""
    return (G("numpy", "dtype") + U(spec) + (TRUE if align else FALSE) + TRUE + T3 + REDUCE + MARK + I(3)
            + U(order) + sub + names + fields + I(elsize) + I(-1) + I(flags) + TUPLE + BUILD)


def reconstruct(shape, dt, raw, fortran=FALSE):
    """_reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype, fortran, raw)."""
    shp = b"".join(I(s) for s in shape)
    return (G(MA, "_reconstruct") + G("numpy", "ndarray") + I(0) + T1 + B(b"b") + T3 + REDUCE
            + MARK + I(1) + MARK + shp + TUPLE + dt + fortran + raw + TUPLE + BUILD)


def frombuffer(raw, dt, shape, order="C"):
    return G(NUM, "_frombuffer") + MARK + B(raw) + dt + MARK + b"".join(I(s) for s in shape) + TUPLE \
        + U(order) + TUPLE + REDUCE


def stub(mod="chumpy.ch", name="Ch"):
    return G(mod, name) + b")" + REDUCE


def ch(x_ops):
    return stub() + EMPTY_DICT + U("x") + x_ops + SETITEM + BUILD


def in_dict(ops):
    return PROTO + EMPTY_DICT + U("x") + ops + SETITEM + STOP


def obj_list(*items):
    return EMPTY_LIST + b"".join(i + APPEND for i in items)


def load(payload):
    return load_pickle(io.BytesIO(payload))


# ---------------------------------------------------- memory-unsafe payloads
FLAGLESS_O = dtype("O8", flags=0)
MEMORY_UNSAFE = {
    # atk1: object array from 8 attacker bytes via a flag-less object dtype -> arbitrary pointer
    "frombuffer_object": in_dict(frombuffer(b"AAAAAAAA", FLAGLESS_O, (1,))),
    "frombuffer_object_flagged": in_dict(frombuffer(b"AAAAAAAA", dtype("O8", flags=63), (1,))),
    "reconstruct_object_raw": in_dict(reconstruct((1,), FLAGLESS_O, B(b"AAAAAAAA"))),
    # atk2: object list shorter than the shape -> out-of-bounds read
    "short_object_list": in_dict(reconstruct((1000,), dtype("O8", flags=63), obj_list(I(7)))),
    "long_object_list": in_dict(reconstruct((1,), dtype("O8", flags=63), obj_list(I(7), I(8)))),
    # t3: overlapping object/int fields; offsets past the item size; sub-arrays
    "overlapping_fields": in_dict(reconstruct((1,), dtype(
        "V8", names=U("a") + U("b") + T2, elsize=8, flags=63,
        fields=EMPTY_DICT + U("a") + dtype("O8", flags=63) + I(0) + T2 + SETITEM
        + U("b") + dtype("i8", "<") + I(0) + T2 + SETITEM), obj_list(MARK + NONE + I(0x41414141) + TUPLE))),
    "fields_on_object_spec": in_dict(reconstruct((1,), dtype(
        "O8", names=U("a") + T1, flags=63, fields=EMPTY_DICT + U("a") + dtype("i8", "<") + I(0) + T2 + SETITEM),
        obj_list(I(1)))),
    "offset_past_itemsize": in_dict(reconstruct((1,), dtype(
        "V8", names=U("a") + T1, elsize=8, fields=EMPTY_DICT + U("a") + dtype("i8", "<") + I(4096) + T2
        + SETITEM), B(b"\0" * 8))),
    "subarray": in_dict(reconstruct((1,), dtype("V16", sub=dtype("f8", "<") + I(2) + T1 + T2, elsize=16),
                                    B(b"\0" * 16))),
    "void_raw": in_dict(reconstruct((1,), dtype("V8", elsize=8), B(b"\0" * 8))),
    "elsize_mismatch": in_dict(reconstruct((1,), dtype("S4", elsize=4096), B(b"\0" * 4))),
    "bad_byteorder": in_dict(reconstruct((1,), dtype("f8", "x"), B(b"\0" * 8))),
    "raw_too_short": in_dict(reconstruct((4,), dtype("f8", "<"), B(b"\0" * 8))),
    "raw_too_long": in_dict(reconstruct((1,), dtype("f8", "<"), B(b"\0" * 16))),
    "frombuffer_short": in_dict(frombuffer(b"\0" * 8, dtype("f8", "<"), (1000,))),
    "scalar_short": in_dict(G(MA, "scalar") + dtype("f8", "<") + B(b"\0" * 2) + T2 + REDUCE),
    "negative_shape": in_dict(reconstruct((-1,), dtype("f8", "<"), B(b""))),
    "ndarray_called": in_dict(G("numpy", "ndarray") + I(4) + T1 + REDUCE),
    "build_on_ndarray": in_dict(G("numpy", "ndarray") + NONE + EMPTY_DICT + U("a") + I(1) + SETITEM + T2 + BUILD),
    "dtype_as_shape_dtype": in_dict(reconstruct((1,), I(5), B(b"\0" * 8))),
}

_CHILD = """
import io, sys, types
for name, sub in (("pyfacelang", "pyfacelang"), ("pyfacelang.face", "pyfacelang/face")):
    mod = types.ModuleType(name); mod.__path__ = [sys.argv[1] + "/" + sub]; sys.modules[name] = mod
from pyfacelang.face.safe_pickle import load_pickle  # without torch: fast start
try:
    load_pickle(io.BytesIO(sys.stdin.buffer.read()))
    print("LOADED")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("name", sorted(MEMORY_UNSAFE))
def test_memory_unsafe_numpy_state_is_refused(name):
    """In a child process, so that a regression shows as a failure, not a dead pytest."""
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", _CHILD, str(ROOT)],
                          input=MEMORY_UNSAFE[name], capture_output=True, timeout=30)
    out = proc.stdout.decode(errors="replace").strip()
    assert proc.returncode == 0, f"child died ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}"
    assert out.startswith(("ModelFileError <file object>: ", "UnsafePickleError <file object>: ")), out
    assert "\n" not in out


def test_only_stubs_are_ever_resolved():
    for (mod, name), value in safe_pickle._ALLOWED.items():
        assert isinstance(value, type) and issubclass(value, safe_pickle._Stub), (mod, name)


def test_build_on_a_global_is_refused_and_changes_nothing():
    import importlib

    numeric = importlib.import_module("numpy._core.numeric" if np.__version__ >= "2" else "numpy.core.numeric")
    before = numeric._frombuffer.__defaults__
    payload = PROTO + G(NUM, "_frombuffer") + NONE + EMPTY_DICT + U("__defaults__") + U("x") + T1 + SETITEM \
        + T2 + BUILD + STOP
    with pytest.raises(UnsafePickleError, match="refusing BUILD on the global 'numpy.core.numeric._frombuffer'"):
        load(payload)
    with pytest.raises(UnsafePickleError, match="refusing BUILD"):
        load(PROTO + G("chumpy.ch", "Ch") + EMPTY_DICT + U("x") + I(1) + SETITEM + BUILD + STOP)
    with pytest.raises(UnsafePickleError, match="refusing BUILD on a numpy.core.numeric._frombuffer result"):
        load(in_dict(frombuffer(b"\0" * 8, dtype("f8", "<"), (1,)) + EMPTY_DICT + BUILD))
    assert numeric._frombuffer.__defaults__ == before


# ------------------------------------------------------------ tiny-file DoS
def _fast(fn, limit=1.0):
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        assert time.perf_counter() - t0 < limit


def test_huge_declared_shapes_fail_before_allocating():
    o8 = dtype("O8", flags=63)
    for payload in (PROTO + G(MA, "_reconstruct") + G("numpy", "ndarray") + I(200_000_000) + T1 + o8 + T3
                    + REDUCE + STOP,  # dos_a: no state at all
                    in_dict(reconstruct((100_000, 100_000), o8, obj_list(I(1)))),
                    in_dict(reconstruct((1 << 30, 1 << 30, 1 << 30), dtype("f8", "<"), B(b""))),
                    in_dict(frombuffer(b"", dtype("f8", "<"), (0, 1 << 30, 1 << 30)) + NONE + T2)):
        with pytest.raises(ModelFileError):
            _fast(lambda: load(payload))


def _csr(rows, cols, indptr, shape_ops=None):
    f8, i4 = dtype("f8", "<"), dtype("i4", "<")
    return (stub("scipy.sparse.csr", "csr_matrix") + EMPTY_DICT
            + U("data") + reconstruct((0,), f8, B(b"")) + SETITEM
            + U("indices") + reconstruct((0,), i4, B(b"")) + SETITEM
            + U("indptr") + reconstruct((len(indptr),), i4, B(np.array(indptr, "<i4").tobytes())) + SETITEM
            + U("_shape") + (shape_ops or I(rows) + I(cols) + T2) + SETITEM + BUILD)


def test_sparse_densify_is_bounded():
    np.testing.assert_array_equal(load(in_dict(_csr(2, 3, [0, 0, 0])))["x"], np.zeros((2, 3)))
    with pytest.raises(ModelFileError, match="over the limit"):  # 1 x 1e8 dense from a 2-entry indptr
        _fast(lambda: load(in_dict(_csr(1, 100_000_000, [0, 0]))))
    with pytest.raises(ModelFileError, match="over the limit"):  # dos_c: 10000 x 10000
        _fast(lambda: load(in_dict(_csr(10_000, 10_000, [0] * 10_001))))
    with pytest.raises(ModelFileError, match="inconsistent"):  # indptr does not match the shape
        load(in_dict(_csr(1 << 30, 3, [0, 0])))


def _shared_chain(depth):
    """dos_b: S_k.x = (A_k, B_k) with A_k.x = B_k.x = S_(k-1): 2^depth paths, depth+1 distinct values."""
    p = PROTO + ch(b"G" + struct.pack(">d", 1.0)) + b"q\x00"
    for k in range(1, depth + 1):
        a = ch(b"h" + bytes([k - 1]))
        p += ch(a + ch(b"h" + bytes([k - 1])) + T2) + b"q" + bytes([k])
    return p + STOP


def test_shared_substructure_is_converted_once():
    out = _fast(lambda: load(_shared_chain(19)))  # was exponential: 2^19 re-conversions
    assert out.shape == (2,) * 19 and np.all(out == 1.0)
    with pytest.raises(ModelFileError, match="nested more than"):  # the reproducer's depth 22
        _fast(lambda: load(_shared_chain(22)))
    # a list shared 2^40 ways, converted in linear time
    p = PROTO + ch(I(1)) + T1 + b"q\x00"
    for k in range(1, 41):
        p += EMPTY_LIST + b"h" + bytes([k - 1]) + APPEND + b"h" + bytes([k - 1]) + APPEND + b"q" + bytes([k])
    out = _fast(lambda: load(p + STOP))
    assert out[0][1][0] is out[1][0][1]


def test_array_totals_and_nested_lists_are_bounded(monkeypatch):
    raw = B(np.zeros(1000).tobytes()) + b"q\x01"
    arrays = PROTO + EMPTY_LIST + reconstruct((1000,), dtype("f8", "<"), raw) + APPEND
    for _ in range(9):  # nine more arrays on the same (memoized) 8 kB buffer
        arrays += reconstruct((1000,), dtype("f8", "<"), b"h\x01") + APPEND
    assert len(load(arrays + STOP)) == 10
    monkeypatch.setattr(safe_pickle, "MAX_TOTAL_ELEMENTS", 5000)
    with pytest.raises(ModelFileError, match="arrays total over 5000"):
        load(arrays + STOP)
    # Ch.x = a list nested 2^25 ways: np.asarray would walk 33M Python floats
    p = PROTO + EMPTY_LIST + b"G" + struct.pack(">d", 1.0) + APPEND + b"q\x00" + b"0"  # POP: keep it in the memo
    for k in range(1, 25):
        p += EMPTY_LIST + b"h" + bytes([k - 1]) + APPEND + b"h" + bytes([k - 1]) + APPEND + b"q" + bytes([k]) + b"0"
    with pytest.raises(ModelFileError, match="nested list of over"):
        _fast(lambda: load(p + ch(b"h\x18") + STOP))


# ------------------------------------------------------------------ errors
ERRORS = {
    "cyclic_chumpy": (PROTO + stub() + b"q\x00" + EMPTY_DICT + U("x") + stub() + EMPTY_DICT + U("x") + b"h\x00"
                      + SETITEM + BUILD + SETITEM + BUILD + STOP, "cyclic reference"),
    "ragged_x": (PROTO + ch(obj_list(obj_list(I(1)), obj_list(I(1), I(2)))) + STOP, "not a regular array"),
    "string_x": (PROTO + ch(U("abc")) + STOP, "expected an array"),
    "frozenset_stub": (PROTO + G("builtins", "frozenset") + ch(I(1)) + T1 + T1 + REDUCE + STOP, "set item"),
    "deep_list": (PROTO + EMPTY_LIST * 100_000 + APPEND * 99_999 + STOP, "nested more than"),
    "cyclic_tuple": (PROTO + EMPTY_LIST + b"q\x00" + b"h\x00" + T1 + APPEND + STOP, "cyclic reference"),
    "sparse_str_shape": (in_dict(_csr(0, 0, [0], U("ab"))), r"csr_matrix has shape 'ab', expected two"),
    "sparse_float_indices": (PROTO + stub("scipy.sparse.csc", "csc_matrix") + EMPTY_DICT + U("data") + EMPTY_LIST
                             + SETITEM + U("indices") + obj_list(b"G" + struct.pack(">d", 0.5)) + SETITEM
                             + U("indptr") + obj_list(I(0)) + SETITEM + BUILD + STOP, "indices has dtype float64"),
    "sparse_no_data": (PROTO + stub("scipy.sparse.csc", "csc_matrix") + EMPTY_DICT + BUILD + STOP, "no 'data'"),
    "complex_str": (PROTO + G("builtins", "complex") + U("1" * 10**6 + "j") + T1 + REDUCE + STOP, "complex"),
    "bytes_int": (PROTO + G("__builtin__", "bytes") + I(10**9) + T1 + REDUCE + STOP, "builtins.bytes"),
    "codecs_utf8": (PROTO + G("_codecs", "encode") + U("x") + U("utf-8") + T2 + REDUCE + STOP, "_codecs"),
    "codecs_int": (PROTO + G("_codecs", "encode") + I(5) + U("latin1") + T2 + REDUCE + STOP, "_codecs"),
    "object_called": (PROTO + G("builtins", "object") + b")" + REDUCE + STOP, "builtins.object"),
    "reconstructor_dtype": (b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nobject\nNtR.", "_reconst"),
    "bare_global": (PROTO + G("numpy", "dtype") + STOP, "bare reference to 'numpy.dtype'"),
    "state_twice": (PROTO + ch(I(1)) + EMPTY_DICT + BUILD + STOP, "state twice"),
    "dict_key_array": (PROTO + EMPTY_DICT + ch(I(1)) + I(1) + SETITEM + STOP, "dict key"),
    "unknown_dtype": (in_dict(reconstruct((1,), dtype("M8", "<"), B(b"\0" * 8))), "unsupported numpy dtype"),
    "ext_code": (PROTO + b"\x82\x01" + STOP, "extension code"),
    "persid": (PROTO + b"P1\n" + STOP, "persistent"),
    "empty": (b"", "not a readable"),
    "memo_index": (PROTO + NONE + b"r" + struct.pack("<I", 1 << 28) + STOP, "memo index 268435456"),
    "memo_index_text": (b"Np999999999\n.", "memo index 999999999"),
    "bytes8_length": (PROTO + b"\x8e" + struct.pack("<Q", 10**10) + b"abc" + STOP, "not a readable"),
    "truncated": (PROTO + EMPTY_DICT + U("x"), "not a readable"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_pickles_raise_one_line_model_file_errors(name):
    payload, match = ERRORS[name]
    with pytest.raises(ModelFileError, match=match) as info:
        _fast(lambda: load(payload))
    assert str(info.value).startswith("<file object>: ") and "\n" not in str(info.value)


def _npz_with_header(path, shape, data):
    """An .npz whose member 'a.npy' has a float64 header for `shape` followed by `data`."""
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", buf.getvalue() + data)
    return path


def test_bad_npy_and_npz_files(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelFileError, match=r"bad\.npz': not a readable \.npz \(BadZipFile"):
        load_flame(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", a=np.array([{}], dtype=object))
    with pytest.raises(ModelFileError, match="object array"):
        load_flame(tmp_path / "obj.npz")
    with pytest.raises(ModelFileError, match="over the size limit"):  # 8 TB promised by a tiny file
        _fast(lambda: load_flame(_npz_with_header(tmp_path / "huge.npz", (10**12,), b"\0" * 8)))
    with pytest.raises(ModelFileError, match="truncated"):
        load_flame(_npz_with_header(tmp_path / "short.npz", (100,), b"\0" * 8))
    with open(tmp_path / "trunc.npy", "wb") as fp:  # header promises 8e12 bytes, the file has 8
        np.lib.format.write_array_header_1_0(fp, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
        fp.write(b"\0" * 8)
    with pytest.raises(ModelFileError, match="truncated"):
        _fast(lambda: load_npy_pickled(tmp_path / "trunc.npy"))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x09\x00")
    with pytest.raises(ModelFileError, match="not a valid .npy"):
        load_npy_pickled(tmp_path / "junk.npy")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.pkl"):
        load_flame(tmp_path / "empty.pkl")


def test_npz_reader_matches_np_load(tmp_path):
    arrays = {"f": np.arange(12, dtype=np.uint32).reshape(4, 3), "F": np.asfortranarray(np.ones((3, 2))),
              "be": np.arange(3, dtype=">f8"), "e": np.zeros((0, 3)), "s": np.array("lbs")}
    np.savez_compressed(tmp_path / "a.npz", **arrays)
    from pyfacelang.face.flame import _read_mapping

    got = _read_mapping(tmp_path / "a.npz", "test file")
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and got[k].flags.f_contiguous == v.flags.f_contiguous
        np.testing.assert_array_equal(got[k], v)


# --------------------------------------------------------- legitimate files
def _same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous
        if a.dtype == object:
            for x, y in zip(a.ravel(order="K"), b.ravel(order="K")):
                _same(x, y)
        else:
            np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b or (a != a and b != b)


LEGIT = {
    "f64": np.arange(12.0).reshape(3, 4), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "big_endian": np.arange(4, dtype=">i4"), "u32": np.arange(5, dtype=np.uint32), "bool": np.array([True, False]),
    "c128": np.array([1 + 2j]), "f16": np.arange(3, dtype=np.float16), "empty": np.zeros((0, 3)),
    "zero_d": np.array(2.5), "bytes_arr": np.array([b"ab", b"c"]), "str_arr": np.array(["ab", "cde"]),
    "objects": np.array([{"a": np.arange(2)}, [1, 2], None, "s"], dtype=object),
    "objects_2d": np.asfortranarray(np.array([[1, "a"], [2.5, None]], dtype=object)),
    "scalars": [np.float64(1.5), np.int32(-3), np.bool_(True), np.str_("lbs"), np.bytes_(b"x"), np.complex64(1j)],
    "plain": {"b": b"\x00\xff", "e": b"", "c": 1 + 2j, "s": {1, 2}, "fs": frozenset({"a"}), "t": (1, "x", None)},
    "nan": np.array([np.nan, np.inf]),
}


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_numpy_pickles_load_exactly(protocol):
    payload = pickle.dumps(LEGIT, protocol=protocol)
    _same(load(payload), pickle.loads(payload))


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy_2_spellings(protocol):
    payload = pickle.dumps(LEGIT, protocol=protocol)
    for old, new in ((b"numpy.core.", b"numpy._core."), (b"numpy._core.", b"numpy.core.")):
        _same(load(payload.replace(old, new)), pickle.loads(payload))
    arr = np.arange(6.0).reshape(2, 3)
    for core in ("numpy.core", "numpy._core"):  # protocol-5 _frombuffer, C and F order
        p5 = PROTO + EMPTY_LIST + G(f"{core}.numeric", "_frombuffer") + MARK + B(arr.tobytes()) \
            + dtype("f8", "<") + I(2) + I(3) + T2 + U("C") + TUPLE + REDUCE + APPEND \
            + G(f"{core}.numeric", "_frombuffer") + MARK + b"\x96" + struct.pack("<Q", 48) + arr.tobytes("F") \
            + dtype("f8", "<") + I(2) + I(3) + T2 + U("F") + TUPLE + REDUCE + APPEND + STOP
        c, f = load(p5)
        np.testing.assert_array_equal(c, arr)
        np.testing.assert_array_equal(f, arr)
        assert f.flags.f_contiguous and c.flags.writeable and f.flags.writeable


def test_bytes_encoding_and_chumpy_args():
    py2 = (b"\x80\x02}q\x00(U\x01xq\x01cchumpy.ch\nCh\nq\x02)\x81q\x03}q\x04U\x01xq\x05cnumpy.core.multiarray"
           b"\n_reconstruct\nq\x06cnumpy\nndarray\nq\x07K\x00\x85U\x01b\x87Rq\x08(K\x01K\x02\x85cnumpy\ndtype"
           b"\nq\tU\x02f8K\x00K\x01\x87Rq\n(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U"
           b"\x10" + np.array([1.0, 2.0]).tobytes() + b"tbsbu.")
    for encoding in ("latin1", "bytes"):
        out = load_pickle(io.BytesIO(py2), encoding=encoding)
        np.testing.assert_array_equal(out["x" if encoding == "latin1" else b"x"], [1.0, 2.0])
    stream = io.BytesIO(pickle.dumps([1], protocol=2) + pickle.dumps(np.arange(2), protocol=5))
    assert load_pickle(stream) == [1]  # the stream is left right after the first pickle
    np.testing.assert_array_equal(load_pickle(stream), np.arange(2))
    np.testing.assert_array_equal(load(PROTO + G("chumpy.ch", "Ch") + I(1) + I(2) + T2 + REDUCE + EMPTY_DICT
                                       + U("x") + I(3) + SETITEM + BUILD + STOP), 3)


# ------------------------------------------------------------ flame options
def test_num_shape_and_num_expression_messages(tmp_path):
    from tests.test_flame import make_arrays, write_npz  # noqa: PLC0415

    small = write_npz(tmp_path / "small.npz", make_arrays(num_blend=6))
    big = write_npz(tmp_path / "big.npz", make_arrays(num_blend=302))
    cases = [(small, {"num_shape": -1}, r"num_shape=-1 is not allowed .* it has 6 blendshapes, so num_shape "
                                        r"must be between 0 and 6"),
             (small, {"num_shape": 7}, r"num_shape=7 .* between 0 and 6"),
             (small, {"num_shape": 4, "num_expression": -2}, r"num_expression=-2 .* 4 are identity and 2 "
                                                             r"expression, so num_expression must be between 0 and 2"),
             (small, {"num_shape": 2.5}, "num_shape must be an integer"),
             (big, {"num_shape": 301}, r"first 300 of its 302 blendshapes are identity, so num_shape must be "
                                       r"between 0 and 300"),
             (big, {"num_expression": 3}, r"num_expression=3 .* between 0 and 2")]
    for path, kw, match in cases:
        with pytest.raises(FaceLangError, match=match):
            load_flame(path, **kw)
    m = load_flame(small, num_shape=6)
    assert (m.num_shape, m.num_expression) == (6, 0)
    m = load_flame(small, num_shape=np.int64(0), num_expression=3)
    assert (m.num_shape, m.num_expression) == (0, 3)
