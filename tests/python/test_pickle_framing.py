"""The framing check the TorchScript importer runs on an archive's pickles
before torch::jit::load (csrc/runtime/pickle_framing.cc): every pickle
Python writes passes, every damaged length is refused with its offset, and
a damaged archive costs a clean ValueError, not gigabytes of memory."""
import collections
import io
import pickle
import random
import resource
import struct
import zipfile

import pytest
import torch

from alpa_torch import _runtime

OBJECTS = [
    None, True, 0, -1, 255, 65535, 2**31 - 1, -2**31, 2**64 + 7, -(2**100), 1.5, float("inf"),
    "", "x", "ü" * 300, "a" * 70000, b"", b"\x00" * 300, bytearray(b"abc"),
    (1,), (1, 2), (1, 2, 3), tuple(range(10)), [1, [2, [3]]], {"a": {"b": [1.0, "c"]}},
    {1, 2, 3}, frozenset({"x"}), collections.OrderedDict(a=1), complex(1, 2), range(3),
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_python_pickle_passes(protocol):
    for obj in OBJECTS:
        _runtime.check_pickle_framing(pickle.dumps(obj, protocol=protocol))
    shared = ["s"] * 3  # memo GET/PUT
    _runtime.check_pickle_framing(pickle.dumps([shared, shared, OBJECTS], protocol=protocol))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_truncation_is_refused(protocol):
    data = pickle.dumps({"weights": [1.0, 2.0], "name": "x" * 40, "big": 2**70}, protocol=protocol)
    for n in range(len(data)):
        with pytest.raises(ValueError, match="is damaged"):
            _runtime.check_pickle_framing(data[:n])


def test_damaged_lengths_name_the_offset():
    cases = {
        b"X" + struct.pack("<I", 0xFFFFFF01) + b"abc.": "a length of 4294967041 bytes where 4",
        b"\x8d" + struct.pack("<Q", 2**40) + b".": "a length of 1099511627776",
        b"T" + struct.pack("<i", -5) + b".": "a negative length",
        b"\x95" + struct.pack("<Q", 100) + b"N.": "a frame of 100 bytes",
        b"Nr" + struct.pack("<I", 10**9) + b".": "memo index 1000000000 after only 2 opcodes",
        b"cbuiltins\nlist": "a text argument has no newline",
        b"N\xff.": "unknown opcode 0xff",
        b"NN": "no STOP opcode",
    }
    for data, why in cases.items():
        with pytest.raises(ValueError, match="data.pkl is damaged: " + why.replace("(", r"\(")):
            _runtime.check_pickle_framing(data, "data.pkl")
    _runtime.check_pickle_framing(b"N.garbage after STOP is not read")


def _archive(tmp_path):
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()))
    path = tmp_path / "m.pt"
    torch.jit.save(model, str(path))
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, body in files.items():
            z.writestr(name, body)
    return out.getvalue()


def test_damaged_archive_is_a_clean_error_without_the_allocation(tmp_path):
    files = _archive(tmp_path)
    assert _runtime.import_torchscript(_write(files), ["f32[2,8]"])  # the undamaged file
    name = next(n for n in files if n.endswith("/data.pkl"))
    pkl = files[name]
    at = pkl.index(b"X")  # the first BINUNICODE: say it holds 4 GiB
    files[name] = pkl[:at + 1] + struct.pack("<I", 0xFFFFFF01) + pkl[at + 5:]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"cannot load the TorchScript bytes: the archive's "
                                         r"data.pkl is damaged: a length of 4294967041 bytes"):
        _runtime.import_torchscript(_write(files), ["f32[2,8]"])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) >> 10
    assert grown_mb < 256, f"the refused archive still cost {grown_mb} MB"


def test_random_damage_to_data_pickle_never_escapes_as_other_than_value_error(tmp_path):
    files = _archive(tmp_path)
    name = next(n for n in files if n.endswith("/data.pkl"))
    rng = random.Random(0)
    for _ in range(200):
        pkl = bytearray(files[name])
        for _ in range(rng.randint(1, 4)):
            pkl[rng.randrange(len(pkl))] = rng.randrange(256)
        damaged = dict(files, **{name: bytes(pkl)})
        try:
            _runtime.import_torchscript(_write(damaged), ["f32[2,8]"])
        except (ValueError, NotImplementedError):
            pass
