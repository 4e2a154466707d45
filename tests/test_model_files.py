"""Sequential.save / load and the files they meet (issue 12): hostile and corrupt .npz
files are refused by one ValueError, within the model's own memory, leaving the model
as it was; save's permissions, temporary files, the path it reports; `load` takes the
path `save` took."""

import os
import signal
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import run_python

from pycnn import BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential, cli

MiB = 1 << 20
BOMB_BYTES = 256 * MiB  # what reading a bomb whole costs; far above the budget
BUDGET = 50 * MiB  # extra memory a refused load may use


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(
        Conv2d(1, 8, 3, rng=rng),
        BatchNorm2d(8),
        ReLU(),
        Flatten(),
        Linear(8 * 6 * 6, 10, rng=rng),
    )


def _state(seed=1):
    """A valid state for `_model()` that differs from it in every array."""
    rng = np.random.default_rng(seed)
    return {
        k: (
            rng.standard_normal(v.shape).astype(v.dtype)
            if v.dtype.kind == "f"
            else np.asarray(rng.integers(1, 1000), dtype=v.dtype)  # num_batches_tracked
        )
        for k, v in _model().state_dict().items()
    }


def _bits(model):
    return {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in model.state_dict().items()}


def _npy_header(shape, descr="<f4", fortran_order=False):
    """The bytes of a version 1.0 .npy header (what np.save writes before the data)."""
    import io

    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    )
    return f.getvalue()  # magic string included


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    """Write `members` {name: bytes, or (header bytes, zero bytes to stream after)}."""
    # level 1: deflating 256 MiB of zeros takes 0.4 s instead of 1 s, into a 1.1 MB file
    with zipfile.ZipFile(path, "w", compression, allowZip64=True, compresslevel=1) as z:
        for name, content in members.items():
            if isinstance(content, bytes):
                z.writestr(name, content)
                continue
            head, zeros = content
            with z.open(name, "w", force_zip64=True) as f:
                f.write(head)
                chunk = bytes(MiB)
                for start in range(0, zeros, MiB):
                    f.write(chunk[: min(MiB, zeros - start)])
    return path


def _npy(arr):
    import io

    f = io.BytesIO()
    np.save(f, arr, allow_pickle=True)
    return f.getvalue()


def _good_members():
    return {f"{k}.npy": _npy(v) for k, v in _state().items()}


# --- the crafted files ---------------------------------------------------------------------


def _crafted(folder):
    """{case: (path, match)}: every file `load` must refuse with a ValueError."""
    folder.mkdir(exist_ok=True)
    good = _good_members()
    cases = {}

    def case(name, members, match, **kw):
        cases[name] = (_zip(folder / f"{name}.npz", members, **kw), match)

    full = folder / "full.npz"
    np.savez(full, **_state())
    data = full.read_bytes()
    for name, size in (
        ("half", len(data) // 2),
        ("90pct", len(data) * 9 // 10),
        ("200-bytes", 200),
        ("all-but-1-byte", len(data) - 1),
    ):
        path = folder / f"truncated-{name}.npz"
        path.write_bytes(data[:size])
        cases[f"truncated-{name}"] = (
            path,
            r"`path` must be an .npz file written by "
            r"Sequential.save. Received: path=.*BadZipFile",
        )
    # the data of a stored member cut short, the zip directory intact: ends too early
    short = dict(good, **{"4.bias.npy": good["4.bias.npy"][:-8]})
    case(
        "short-member",
        short,
        r"key '4.bias' cannot be read: member '4.bias.npy' is not a "
        r"valid .npy array \(ValueError: the data ends after 32 of 40",
        compression=zipfile.ZIP_STORED,
    )
    corrupt = folder / "bad-crc.npz"
    _zip(corrupt, good, compression=zipfile.ZIP_STORED)
    raw = bytearray(corrupt.read_bytes())
    at = raw.index(good["4.weight.npy"][128:160])  # flip a data byte: the CRC is wrong
    raw[at] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    cases["bad-crc"] = (corrupt, r"key '4.weight' cannot be read: .*BadZipFile: Bad CRC-32")

    # the AttributeError: a member that is not '<key>.npy'
    raw_member = {k: v for k, v in good.items() if k != "0.weight.npy"}
    case(
        "member-without-npy-suffix",
        dict(raw_member, **{"0.weight": b"\x00" * 288}),
        r"member '0.weight' is not an .npy array",
    )
    case(
        "member-not-npy-inside",
        dict(good, **{"0.weight.npy": b"PK not an npy at all"}),
        r"key '0.weight' cannot be read: member '0.weight.npy' is not a valid .npy array "
        r"\(ValueError: the magic string is not correct",
    )
    case("folder-member", dict(good, **{"notes/": b""}), r"member 'notes/' is not an .npy")
    case(
        "pickled-object-array",
        dict(
            good,
            **{
                "0.weight.npy": _npy(
                    np.array([{"a": 1}] * 72, dtype=object).reshape(8, 1, 3, 3)
                )
            },
        ),
        r"key '0.weight' cannot be read: member '0.weight.npy' holds Python objects "
        r"\(dtype object\), which would need unpickling; load never unpickles",
    )
    # the MemoryError: a header declaring 4 TiB (no data behind it)
    case(
        "huge-declared-shape",
        dict(good, **{"4.weight.npy": _npy_header((1 << 40,))}),
        r"key '4.weight' has shape \(1099511627776,\), the model expects \(10, 288\)",
    )
    case(
        "huge-declared-shape-same-ndim",
        dict(good, **{"4.weight.npy": _npy_header((1 << 20, 1 << 20))}),
        r"key '4.weight' has shape \(1048576, 1048576\), the model expects \(10, 288\)",
    )
    # deflate bombs: ~BOMB_BYTES of zeros in a file of a few hundred KB
    case(
        "bomb-right-shape-trailing-data",
        dict(good, **{"4.weight.npy": (_npy_header((10, 288)), 10 * 288 * 4 + BOMB_BYTES)}),
        r"key '4.weight' cannot be read: member '4.weight.npy' is not a valid .npy array "
        r"\(ValueError: more than the 11,520 bytes of a \(10, 288\) float32 array follow",
    )
    case(
        "bomb-huge-shape",
        dict(good, **{"4.weight.npy": (_npy_header((10, BOMB_BYTES // 40)), BOMB_BYTES)}),
        r"key '4.weight' has shape \(10, 6710886\), the model expects \(10, 288\)",
    )
    case(
        "bomb-huge-shape-first-key",
        dict(good, **{"0.weight.npy": (_npy_header((8, 1, 3, BOMB_BYTES // 96)), BOMB_BYTES)}),
        r"key '0.weight' has shape \(8, 1, 3, 2796202\), the model expects \(8, 1, 3, 3\)",
    )
    case(
        "wrong-dtype",
        dict(good, **{"4.bias.npy": _npy(np.zeros(10, np.float64))}),
        r"key '4.bias' has dtype float64, the model expects float32",
    )
    case(
        "wrong-byte-order",
        dict(good, **{"4.bias.npy": _npy(np.zeros(10, ">f4"))}),
        r"key '4.bias' has dtype >f4, the model expects <f4",
    )
    case(
        "wrong-shape",
        dict(good, **{"4.bias.npy": _npy(np.zeros(11, np.float32))}),
        r"key '4.bias' has shape \(11,\), the model expects \(10,\)",
    )
    case(
        "missing-key",
        {k: v for k, v in good.items() if k != "1.running_var.npy"},
        r"missing key '1.running_var': the file does not match this model",
    )
    case(
        "unexpected-key",
        dict(good, **{"extra.npy": _npy(np.zeros(2, np.float32))}),
        r"unexpected key 'extra': the file does not match this model",
    )
    dup = folder / "duplicate-member.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(dup, "w") as z:
            for name, content in good.items():
                z.writestr(name, content)
            z.writestr("4.bias.npy", _npy(np.zeros(10, np.float32)))
    cases["duplicate-member"] = (dup, r"member '4.bias.npy' appears twice")
    case(
        "version-3-header",
        dict(good, **{"4.bias.npy": b"\x93NUMPY\x03\x00" + good["4.bias.npy"][8:]}),
        r"key '4.bias' cannot be read: .* format version \(3, 0\), expected 1.0 or 2.0",
    )

    (folder / "a-directory.npz").mkdir(exist_ok=True)
    cases["directory"] = (folder / "a-directory.npz", r"not a directory")
    (folder / "empty.npz").write_bytes(b"")
    cases["empty-file"] = (folder / "empty.npz", r"Received: path=.*empty.npz.*BadZipFile")
    (folder / "text.npz").write_bytes(b"this is not a zip file at all\n" * 1000)
    cases["not-a-zip"] = (folder / "text.npz", r"Received: path=.*text.npz.*BadZipFile")
    np.save(folder / "single.npy", np.zeros(3, np.float32))
    os.replace(folder / "single.npy", folder / "single.npz")  # a .npy named .npz
    cases["single-npy"] = (folder / "single.npz", r"not a single array")
    return cases


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return _crafted(tmp_path_factory.mktemp("crafted"))


CASES = [
    "truncated-half",
    "truncated-90pct",
    "truncated-200-bytes",
    "truncated-all-but-1-byte",
    "short-member",
    "bad-crc",
    "member-without-npy-suffix",
    "member-not-npy-inside",
    "folder-member",
    "pickled-object-array",
    "huge-declared-shape",
    "huge-declared-shape-same-ndim",
    "bomb-right-shape-trailing-data",
    "bomb-huge-shape",
    "bomb-huge-shape-first-key",
    "wrong-dtype",
    "wrong-byte-order",
    "wrong-shape",
    "missing-key",
    "unexpected-key",
    "duplicate-member",
    "version-3-header",
    "directory",
    "empty-file",
    "not-a-zip",
    "single-npy",
]


def test_every_crafted_case_is_tested(crafted):
    assert sorted(crafted) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_load_refuses_a_crafted_file_cheaply_and_changes_nothing(crafted, name):
    path, match = crafted[name]
    model = _model()
    before = _bits(model)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ValueError, match=match) as info:
            model.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)  # the message names the file
    assert peak < BUDGET, f"{name}: load used {peak / MiB:.1f} MiB"
    assert _bits(model) == before  # validated first, then assigned


def test_the_bombs_would_exceed_the_memory_budget_if_read_whole(crafted):
    """The bombs are small files whose members inflate past the budget, so reading a
    member whole (NumPy's np.load) cannot pass the test above."""
    for name in (
        "bomb-right-shape-trailing-data",
        "bomb-huge-shape",
        "bomb-huge-shape-first-key",
    ):
        path, _ = crafted[name]
        assert os.path.getsize(path) < 2 * MiB
        with zipfile.ZipFile(path) as z:
            assert max(i.file_size for i in z.infolist()) > BOMB_BYTES > 4 * BUDGET


def test_load_reads_a_good_file_and_fortran_order_members(tmp_path):
    state = _state()
    fortran = {k: np.asfortranarray(v) if v.ndim else v for k, v in state.items()}
    assert not fortran["4.weight"].flags.c_contiguous
    for name, arrays in (("c", state), ("fortran", fortran)):
        path = tmp_path / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        model = _model()
        ids = {k: id(v) for k, v in model.state_dict().items()}
        assert model.load(path) is model
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(value, state[key], err_msg=key)
            assert id(value) == ids[key] and value.flags.c_contiguous  # in place


def test_load_of_a_missing_path_raises_file_not_found(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"names no file: '.*absent' nor "
        r"'.*absent.npz' exists",
    ):
        _model().load(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"names no file: '.*absent.npz' exists"):
        _model().load(tmp_path / "absent.npz")


# --- save --------------------------------------------------------------------------------


def test_save_returns_the_file_written_and_load_takes_the_same_path(tmp_path):
    model, other = _model(0), _model(5)
    assert model.save(tmp_path / "m") == str(tmp_path / "m.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert other.load(tmp_path / "m") is other  # save's path, not the file's
    assert _bits(other) == _bits(model)
    assert model.save(str(tmp_path / "n.npz")) == str(tmp_path / "n.npz")
    # a file named exactly `path` wins over path + ".npz"
    np.savez(tmp_path / "m", **_state(3))  # numpy writes m.npz too ...
    os.replace(tmp_path / "m.npz", tmp_path / "m")  # ... so move it to m
    model.save(tmp_path / "m")
    other.load(tmp_path / "m")
    np.testing.assert_array_equal(other.state_dict()["4.bias"], _state(3)["4.bias"])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_file_has_the_permissions_of_the_umask(tmp_path, umask):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(umask)
    try:
        path = _model().save(tmp_path / "m.npz")
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
        os.chmod(path, 0o600)  # an overwrite: a new file
        _model().save(path)
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)


def test_save_removes_stale_temporary_files_of_its_own(tmp_path):
    hour_ago = time.time() - 3700
    names = {
        ".pycnn-save-0a1b2c3d4e5f6a7b.npz": True,  # this version's name, stale
        ".pycnn-save-k2j_x9qz.npz": True,  # mkstemp's (older pycnn), stale
        ".pycnn-save-fresh000.npz": False,  # maybe a save in progress
        ".pycnn-save-notes.txt": False,  # not save's pattern
        ".pycnn-save-a.npz.bak": False,
        "model.npz": False,
    }  # a user's file
    for name, stale in names.items():
        (tmp_path / name).write_bytes(b"half an archive")
        if stale or name != ".pycnn-save-fresh000.npz":
            os.utime(tmp_path / name, (hour_ago, hour_ago))
    (tmp_path / ".pycnn-save-dir.npz").mkdir()  # not a regular file
    os.utime(tmp_path / ".pycnn-save-dir.npz", (hour_ago, hour_ago))
    _model().save(tmp_path / "new")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [n for n, stale in names.items() if not stale] + [".pycnn-save-dir.npz", "new.npz"]
    )


def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    script = (
        "import os, signal, sys, numpy as np, pycnn\n"
        "def killed(f, **arrays):\n"
        "    f.write(b'half an archive'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "np.savez = killed\n"
        "pycnn.Sequential(pycnn.Linear(3, 2, rng=0)).save(sys.argv[1])\n"
    )
    folder = tmp_path / "models"
    folder.mkdir()
    proc = run_python(["-c", script, str(folder / "m")], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (temp,) = folder.iterdir()  # what a kill leaves: no m.npz
    assert temp.name.startswith(".pycnn-save-") and temp.name.endswith(".npz")
    Sequential(Linear(3, 2, rng=0)).save(folder / "m")
    assert temp.exists()  # young: maybe a save in progress
    old = time.time() - 3700
    os.utime(temp, (old, old))
    Sequential(Linear(3, 2, rng=0)).save(folder / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["m.npz"]


def test_cli_train_reports_the_file_it_saved(tmp_path, capsys):
    assert (
        cli.main(
            [
                "train",
                "--quiet",
                "--epochs",
                "1",
                "--limit",
                "64",
                "--save",
                str(tmp_path / "model"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"saved the model to {tmp_path / 'model.npz'}\n" in out
    cli.build_model(8, rng=0).load(tmp_path / "model")


# --- formats by suffix, and files from before num_batches_tracked (issue 16) ------------------


def test_npz_round_trip_keeps_every_array_with_the_batch_norm_counter(tmp_path):
    model = _model()
    model.load_state_dict(_state())
    model(np.ones((2, 1, 8, 8), np.float32))  # a training forward: counter 1 -> 2 ...
    assert model[1].num_batches_tracked == _state()["1.num_batches_tracked"] + 1
    other = _model(5).load(model.save(tmp_path / "m.npz"))
    assert _bits(other) == _bits(model)
    with np.load(tmp_path / "m.npz") as f:
        assert (
            f["1.num_batches_tracked"].shape == ()
            and f["1.num_batches_tracked"].dtype == np.int64
        )


def test_an_npz_file_without_num_batches_tracked_still_loads(tmp_path):
    """Files written before BatchNorm had the counter hold every other key."""
    old = {k: v for k, v in _state().items() if not k.endswith("num_batches_tracked")}
    np.savez(tmp_path / "old.npz", **old)
    model = _model()
    model[1].num_batches_tracked = 4
    assert model.load(tmp_path / "old.npz") is model
    assert model[1].num_batches_tracked == 4  # kept, as PyTorch keeps it
    for key, value in old.items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)


@pytest.mark.parametrize("name", ["m.pt", "m.npy", "weights.bin", "m.safetensors.bak", "m."])
def test_an_unknown_suffix_is_refused_by_save_and_load(tmp_path, name):
    path = tmp_path / name
    match = (
        r"`path` must end with one of .npz, .safetensors \(or have no suffix, for \.npz\)\. "
        rf"Received: path='.*{name}'"
    )
    with pytest.raises(ValueError, match=match):
        _model().save(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    path.write_bytes(b"anything")
    with pytest.raises(ValueError, match=match):
        _model().load(path)


def test_safetensors_save_is_atomic_and_cleans_its_stale_temporaries(tmp_path):
    pytest.importorskip("safetensors")
    stale = tmp_path / ".pycnn-save-0123456789abcdef.safetensors"
    stale.write_bytes(b"half a file")
    old = time.time() - 3700
    os.utime(stale, (old, old))
    path = _model().save(tmp_path / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert _bits(_model(3).load(path)) == _bits(_model())
