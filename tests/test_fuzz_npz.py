"""Fuzzing the .npz weights reader: numeric arrays read exactly; everything else (wrong
dtypes, object arrays, huge declared shapes, truncation, garbage, other models' keys) is
one StateDictError line, with no pickle loaded and nothing large allocated."""
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.net import StateDictError
from tinycnn.io.weights import read_npz

from .conftest import fuzz_settings


class Canary:
    """An object array element whose unpickling would create a file."""
    path = None

    def __reduce__(self):
        return (os.system, (f"touch {Canary.path}",))


def npy_member(header, data):
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    return member.getvalue() + data


@st.composite
def npz_case(draw):
    """(file bytes, expected {key: array} or None for 'must fail')."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = draw(st.sampled_from(["<f4", "<f8", "<f2", "<i8", "<i4", "u1", "|b1", ">f4"]))
    good = {
        f"k{i}": (rng.standard_normal(shape) * 9).astype(dtype)
        for i in range(draw(st.integers(1, 3)))
    }
    out = io.BytesIO()
    kind = draw(
        st.sampled_from(
            [
                "good",
                "compressed",
                "dtype",
                "object",
                "huge",
                "truncated member",
                "truncated file",
                "garbage",
                "not npy",
            ]
        )
    )
    if kind in ("good", "compressed"):
        (np.savez if kind == "good" else np.savez_compressed)(out, **good)
        return out.getvalue(), good
    if kind == "truncated file":
        np.savez(out, **good)
        # at least two bytes short: whether zipfile reads an archive missing only the last byte
        # (half of the end record's comment length) differs between versions (3.11 refuses it; a CI
        # run drew it)
        cut = draw(st.integers(0, len(out.getvalue()) - 2))
        return out.getvalue()[:cut], None
    if kind == "garbage":
        return draw(st.binary(max_size=200)), None
    with zipfile.ZipFile(out, "w") as z:
        if kind == "dtype":
            bad = draw(
                st.sampled_from(
                    [
                        np.array(["ab"]),
                        np.zeros(2, complex),
                        np.zeros(1, "M8[s]"),
                        np.zeros(1, [("a", "<f4")]),
                    ]
                )
            )
            z.writestr(
                "w.npy", npy_member(np.lib.format.header_data_from_array_1_0(bad), bad.tobytes())
            )
        elif kind == "object":
            z.writestr("w.npy", npy_member({"descr": "|O", "fortran_order": False, "shape": (1,)},
                                           pickle.dumps(np.array([Canary()], dtype=object))))
        elif kind == "huge":
            side = draw(st.integers(10**4, 10**12))
            z.writestr(
                "w.npy",
                npy_member(
                    {"descr": "<f4", "fortran_order": False, "shape": (side, side)},
                    bytes(draw(st.integers(0, 64))),
                ),
            )
        elif kind == "truncated member":
            a = np.arange(10, dtype="<f4")
            data = npy_member(np.lib.format.header_data_from_array_1_0(a), a.tobytes())
            z.writestr("w.npy", data[:draw(st.integers(0, len(data) - 1))])
        elif kind == "not npy":
            z.writestr("w.txt", b"hello")
    return out.getvalue(), None


@pytest.mark.fuzz
@fuzz_settings(40)
@given(npz_case())
def test_npz_files_read_exactly_or_fail_in_one_line(tmp_path_factory, case):
    data, expected = case
    folder = tmp_path_factory.mktemp("npz")
    Canary.path = folder / "canary"
    (folder / "w.npz").write_bytes(data)
    if expected is None:
        with pytest.raises(StateDictError) as e:
            read_npz(folder / "w.npz")
        assert str(folder / "w.npz") in str(e.value) and "\n" not in str(e.value)
    else:
        got = read_npz(folder / "w.npz")
        assert set(got) == set(expected)
        for k, v in expected.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape and got[k].flags.writeable
            np.testing.assert_array_equal(got[k], v)
    assert not Canary.path.exists()


def test_another_models_weights_are_one_line(tmp_path):
    net = tc.Network([("conv1", tc.Conv2d(3, 4, 3)), ("relu1", tc.ReLU())])
    np.savez(tmp_path / "other.npz", **{"features.0.weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(
        StateDictError, match="does not match the network.*missing 2 key.*unexpected 1 key"
    ):
        net.load(tmp_path / "other.npz")
