"""Code that has never run must not be the default (issue 12): avx512 is the default
only in a build whose sources' digest csrc/VERIFIED_AVX512 records as verified on
AVX-512 hardware (tools/verify_simd.py), and the record cannot go stale silently."""

import os
import sys

import pytest

from pycnn._ext import _kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_SOURCES = os.path.isfile(os.path.join(ROOT, "tools", "simd_digest.py")) and os.path.isdir(
    os.path.join(ROOT, "csrc")
)
needs_sources = pytest.mark.skipif(not HAVE_SOURCES, reason="needs the source tree")


@pytest.fixture(scope="module")
def simd_digest():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import simd_digest
    finally:
        sys.path.pop(0)
    return simd_digest


@needs_sources
def test_extension_was_built_from_these_sources(simd_digest):
    built = _kernels.simd_sources_digest()
    assert built == simd_digest.digest(ROOT), (
        f"the extension ({_kernels.__file__}) was built from other C sources than "
        f"{ROOT}/csrc: rebuild it (python setup.py build_ext --inplace, or pip install .)"
    )


@needs_sources
def test_avx512_is_verified_exactly_when_the_record_holds_this_digest(simd_digest):
    # whenever the extension says verified, the checked-in record is of these sources;
    # sources changed since the last verification make it say "not verified", which is
    # a legitimate state (avx512 then runs only when asked), not a failure
    record = simd_digest.read_record(ROOT)
    assert _kernels.avx512_verified() == (
        record.get("sha256") == _kernels.simd_sources_digest()
    )
    if _kernels.avx512_verified():
        for key in ("commit", "cpu", "date"):
            assert record.get(key), f"csrc/VERIFIED_AVX512 has no {key!r} line"


def test_the_default_never_runs_unverified_avx512():
    supported = _kernels.simd_supported()
    best = supported[-1]
    if _kernels.avx512_verified() or best != "avx512":
        assert _kernels.simd_default() == best
    else:
        assert _kernels.simd_default() == "avx2"
    before = _kernels.simd_target()
    try:
        assert _kernels.set_simd_target(None) == _kernels.simd_default()
        if "avx512" in supported:  # still runs when asked
            assert _kernels.set_simd_target("avx512") == "avx512"
    finally:
        _kernels.set_simd_target(before)


def test_digest_covers_every_kernel_source_and_ignores_line_endings(simd_digest, tmp_path):
    if not HAVE_SOURCES:
        pytest.skip("needs the source tree")
    names = simd_digest.source_files(ROOT)
    for name in (
        "csrc/dispatch.c",
        "csrc/dispatch.h",
        "csrc/common.h",
        "csrc/im2col.c",
        "csrc/pool2d.c",
        "csrc/conv_direct.c",
    ):
        assert name in names
    assert "csrc/test_csrc.c" not in names
    # a copy with CRLF line endings has the same digest; one changed byte does not
    (tmp_path / "csrc").mkdir()
    for name in names:
        with open(os.path.join(ROOT, name), "rb") as f:
            data = f.read()
        (tmp_path / name).write_bytes(data.replace(b"\n", b"\r\n"))
    assert simd_digest.digest(str(tmp_path)) == simd_digest.digest(ROOT)
    path = tmp_path / "csrc" / "pool2d.c"
    path.write_bytes(path.read_bytes() + b" ")
    assert simd_digest.digest(str(tmp_path)) != simd_digest.digest(ROOT)


def test_record_is_parsed_and_compared(simd_digest, tmp_path):
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "a.c").write_text("int a;\n")
    assert simd_digest.read_record(str(tmp_path)) == {}
    assert not simd_digest.verified(str(tmp_path))
    (tmp_path / "csrc" / "VERIFIED_AVX512").write_text(
        f"# comment\nsha256 {simd_digest.digest(str(tmp_path))}\ncpu Some CPU (R) 9\n"
    )
    assert simd_digest.read_record(str(tmp_path))["cpu"] == "Some CPU (R) 9"
    assert simd_digest.verified(str(tmp_path))
    (tmp_path / "csrc" / "a.c").write_text("int b;\n")
    assert not simd_digest.verified(str(tmp_path))


def test_pycnn_info_says_whether_avx512_was_verified():
    import io

    import pycnn

    buf = io.StringIO()
    pycnn.show_config(file=buf)
    line = next(
        line for line in buf.getvalue().splitlines() if line.startswith("avx512 verified")
    )
    if _kernels.avx512_verified():
        assert ": yes, on hardware (the default on CPUs with AVX-512" in line
    else:
        assert ": no, not on hardware (runs only when asked: PYCNN_SIMD=avx512" in line
    assert _kernels.simd_sources_digest()[:12] in line
