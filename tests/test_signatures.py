"""Each kernel's argument list is written out several times: the header's declare macro
(csrc/*.h), the definition in the .c file, pycnn/_ext/_csrc.pxd, the `def` wrappers in
pycnn/_ext/_kernels.pyx and their stub pycnn/_ext/_kernels.pyi (issue 13). The C
compiler checks a definition's types against its header and Cython checks a call's
argument count and types against the .pxd, but nothing checks parameter names, the
order of two parameters of one type (`ph, pw` against `pw, ph`), or the .pyi at all.
These tests do:

* every function the headers declare (the PYCNN_DECLARE_* macros expanded by the C
  preprocessor, `cc -E -P`) is declared in _csrc.pxd, in the `cdef extern from` block of
  its own header, with the same return type and the same parameter types and names in
  the same order; the .pxd declares nothing the headers do not;
* every function a .c file defines has the parameter names of its declaration;
* every `def` in _kernels.pyx has a stub in _kernels.pyi with the same parameter names
  in the same order and the same defaults, and the stub has nothing more; so do the
  public module constants; and the compiled module's signatures are the stub's.
"""

import ast
import inspect
import os
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
EXT = os.path.join(ROOT, "pycnn", "_ext")
PXD, PYX, PYI = (
    os.path.join(EXT, name) for name in ("_csrc.pxd", "_kernels.pyx", "_kernels.pyi")
)

needs_sources = pytest.mark.skipif(
    not all(os.path.isfile(p) for p in (PXD, PYX, PYI)) or not os.path.isdir(CSRC),
    reason="needs the source tree (csrc/ and pycnn/_ext/*.pxd, *.pyx)",
)

# qualifiers C allows in a declaration that the .pxd cannot or need not spell
_IGNORED_WORDS = {"restrict", "__restrict", "__restrict__", "extern"}


def _c_compiler():
    """argv of a C compiler that can preprocess, or None."""
    for candidate in (os.environ.get("CC", ""), "gcc", "clang", "cc"):
        argv = shlex.split(candidate)
        if argv and shutil.which(argv[0]):
            return argv
    return None


def _sources(ext):
    return sorted(p for p in os.listdir(CSRC) if p.endswith(ext) and p != "test_csrc.c")


def _preprocess(name):
    """csrc/`name` through the C preprocessor: {csrc file: its expanded text}, each
    line attributed by the preprocessor's line markers to the file it came from (so a
    declaration belongs to the header that wrote it, not to one that includes it)."""
    cc = _c_compiler()
    if cc is None:
        pytest.skip("no C compiler (gcc, clang or $CC) to expand the declare macros with")
    proc = subprocess.run(
        cc + ["-E", "-std=c99", "-x", "c", "-I", CSRC, os.path.join(CSRC, name)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"{' '.join(cc)} -E {name} failed:\n{proc.stderr}"
    chunks, current = {}, None
    for line in proc.stdout.splitlines():
        marker = re.match(r'#\s*(?:line\s+)?\d+\s+"([^"]*)"', line)
        if marker:
            path = marker.group(1)
            inside = os.path.dirname(os.path.abspath(path)) == os.path.abspath(CSRC)
            current = os.path.basename(path) if inside else None
        elif current is not None:
            chunks.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in chunks.items()}


def _type(text):
    """A C/Cython type with one spelling: 'const float  *' -> 'const float *'."""
    words = re.findall(r"\w+|\*", text)
    return " ".join(w for w in words if w not in _IGNORED_WORDS)


def _param(text):
    """'const float *x' -> ('const float *', 'x'); 'void' and '' -> None."""
    text = text.strip()
    if text in ("", "void"):
        return None
    match = re.fullmatch(r"(.*?)(\w+)", text, flags=re.S)
    assert match and match.group(1).strip(), f"cannot read the parameter {text!r}"
    return _type(match.group(1)), match.group(2)


def _signature(ret, params):
    args = [_param(p) for p in params.split(",")]
    return _type(ret), tuple(a for a in args if a is not None)


# a prototype or definition of a pycnn_ function: what comes after the previous
# statement, the name, a parameter list without parentheses inside, then ';' or '{'
_C_FUNCTION = re.compile(
    r"(?:^|(?<=[;{}]))\s*([^;{}()#]*?)\b(pycnn_\w+)\s*\(([^()]*)\)\s*([;{])"
)


def _c_functions(text, end):
    """{name: (return type, ((type, name), ...))} of the non-static functions declared
    (end ';') or defined (end '{') in preprocessed C text."""
    found = {}
    for ret, name, params, stop in _C_FUNCTION.findall(text):
        if stop != end or not ret.strip() or "static" in ret.split():
            continue  # a call (no type before it), or a file-local helper
        found[name] = _signature(ret, params)
    return found


def header_declarations():
    """{name: (header, signature)} of every function declared in csrc/*.h."""
    found = {}
    for header in _sources(".h"):
        for owner, text in _preprocess(header).items():
            for name, sig in _c_functions(text, ";").items():
                assert found.get(name, (owner, sig)) == (owner, sig), (name, owner)
                found[name] = (owner, sig)
    return found


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def pxd_declarations():
    """{name: (header, signature)} of every function in _csrc.pxd's extern blocks."""
    found, header = {}, None
    lines = _read(PXD).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].split("#", 1)[0].rstrip()
        i += 1
        block = re.match(r'cdef extern from "([^"]+)"', line)
        if block:
            header = block.group(1)
            continue
        if (
            not line.strip()
            or not line.startswith(" ")
            or line.strip().startswith(("enum", "ctypedef", "struct", "cdef enum"))
        ):
            if line and not line.startswith(" "):
                header = None
            continue
        # a declaration may run over several lines: join until its parentheses close
        while line.count("(") > line.count(")"):
            line += " " + lines[i].split("#", 1)[0].strip()
            i += 1
        match = re.fullmatch(
            r"\s*(.+?)\b(pycnn_\w+)\s*\((.*)\)\s*(?:noexcept|nogil|except.*)?\s*", line
        )
        assert match, f"_csrc.pxd: cannot read the declaration {line.strip()!r}"
        assert header is not None, f"_csrc.pxd: {match.group(2)} is outside a cdef extern block"
        found[match.group(2)] = (header, _signature(match.group(1), match.group(3)))
    return found


def _show(sig):
    ret, params = sig
    return f"{ret} ({', '.join(f'{t} {n}' for t, n in params)})"


@needs_sources
def test_pxd_declares_every_header_function_as_the_header_does():
    headers, pxd = header_declarations(), pxd_declarations()
    assert len(headers) >= 19, sorted(headers)  # 5 dispatch + 14 kernels, at least
    problems = []
    for name, (header, sig) in sorted(headers.items()):
        if name not in pxd:
            problems.append(f"{name} ({header}) is not declared in _csrc.pxd")
            continue
        pxd_header, pxd_sig = pxd[name]
        if pxd_header != header:
            problems.append(
                f"{name} is declared in {header} but _csrc.pxd puts it under "
                f'cdef extern from "{pxd_header}"'
            )
        if pxd_sig != sig:
            problems.append(
                f"{name}:\n  {header:<12}: {_show(sig)}\n  {'_csrc.pxd':<12}: {_show(pxd_sig)}"
            )
    for name in sorted(set(pxd) - set(headers)):
        problems.append(f"_csrc.pxd declares {name}, which no header in csrc/ declares")
    assert not problems, "\n".join(problems)


@needs_sources
def test_c_definitions_have_the_parameter_names_of_their_declarations():
    headers = header_declarations()
    defined = {}
    for source in _sources(".c"):
        for name, sig in _c_functions(_preprocess(source).get(source, ""), "{").items():
            defined[name] = (source, sig)
    problems = [
        f"{name} has no definition in csrc/*.c" for name in sorted(set(headers) - set(defined))
    ]
    for name, (source, sig) in sorted(defined.items()):
        if name not in headers:
            problems.append(f"{source} defines {name}, which no header declares")
        elif sig != headers[name][1]:
            problems.append(
                f"{name}:\n  {headers[name][0]:<14}: {_show(headers[name][1])}\n"
                f"  {source:<14}: {_show(sig)}"
            )
    assert not problems, "\n".join(problems)


# --- the .pyx wrappers and their stub ------------------------------------------------


def _split_top_level(text):
    """Split on commas outside brackets: 'floating[:, ::1] x, int n=1' -> 2 parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _pyx_source():
    """The .pyx with the files it `include`s (_winograd.pxi) written in their place."""
    return re.sub(
        r'^include "([^"]+)"$',
        lambda m: _read(os.path.join(EXT, m.group(1))),
        _read(PYX),
        flags=re.M,
    )


def pyx_defs():
    """{name: ((param, default or None), ...)} of the module-level `def`s in the .pyx."""
    source = "\n".join(line.split("#", 1)[0] for line in _pyx_source().splitlines())
    found = {}
    for name, params in re.findall(
        r"^def (\w+)\((.*?)\)\s*(?:->[^:]*)?:", source, flags=re.S | re.M
    ):
        args = []
        for part in _split_top_level(params):
            decl, _, default = part.partition("=")
            args.append((re.search(r"\**\w+$", decl.strip()).group(0), default.strip() or None))
        found[name] = tuple(args)
    return found


def pyx_constants():
    """Public module-level names bound by `NAME = ...` in the .pyx."""
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", _pyx_source(), flags=re.M))


def _stub():
    return ast.parse(_read(PYI), filename=PYI)


def pyi_defs():
    found = {}
    for node in _stub().body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            positional = a.posonlyargs + a.args
            defaults = [None] * (len(positional) - len(a.defaults)) + [
                ast.unparse(d) for d in a.defaults
            ]
            args = list(zip((p.arg for p in positional), defaults))
            if a.vararg:
                args.append(("*" + a.vararg.arg, None))
            args += [
                (k.arg, None if d is None else ast.unparse(d))
                for k, d in zip(a.kwonlyargs, a.kw_defaults)
            ]
            if a.kwarg:
                args.append(("**" + a.kwarg.arg, None))
            found[node.name] = tuple(args)
    return found


def pyi_constants():
    return {
        node.target.id
        for node in _stub().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def _public(names):
    return {n for n in names if not n.startswith("_")}


@needs_sources
def test_pyi_stubs_every_pyx_def_with_the_same_parameters():
    pyx, pyi = pyx_defs(), pyi_defs()
    assert len(_public(pyx)) >= 18, sorted(pyx)
    problems = [
        f"_kernels.pyi has no stub for def {name}" for name in sorted(_public(pyx) - set(pyi))
    ]
    problems += [
        f"_kernels.pyi stubs {name}, which _kernels.pyx does not define"
        for name in sorted(set(pyi) - set(pyx))
    ]
    for name in sorted(_public(pyx) & set(pyi)):
        if pyx[name] != pyi[name]:
            problems.append(
                f"{name}:\n  _kernels.pyx: {pyx[name]}\n  _kernels.pyi: {pyi[name]}"
            )
    assert not problems, "\n".join(problems)


@needs_sources
def test_pyi_declares_every_public_pyx_constant():
    pyx, pyi = pyx_constants(), pyi_constants()
    assert "DIRECT_VECTOR_BYTES" in pyx and "SIMD_TARGETS" in pyx
    assert pyx == pyi, (
        f"only in _kernels.pyx: {sorted(pyx - pyi)}; only in the .pyi: {sorted(pyi - pyx)}"
    )


@needs_sources
def test_compiled_module_has_the_stub_signatures():
    """The built extension (not only its source) has the names and defaults of the
    stub: catches a stale build as well as a .pyx the regex above misreads."""
    from pycnn._ext import _kernels

    checked = 0
    for name, params in pyi_defs().items():
        func = getattr(_kernels, name, None)
        assert func is not None, f"the compiled module has no {name}"
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            continue  # not introspectable (a non-binding build)
        got = tuple(
            (p.name, None if p.default is p.empty else repr(p.default))
            for p in sig.parameters.values()
        )
        assert got == params, f"{name}: compiled {got}, stub {params}"
        checked += 1
    if checked == 0:
        pytest.skip("the compiled functions have no introspectable signatures")
    for constant in pyi_constants():
        assert hasattr(_kernels, constant), f"the compiled module has no {constant}"
