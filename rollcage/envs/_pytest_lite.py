"""A tiny stand-in for pytest, copied into the sandbox to run Terminal-Bench ``test_*.py`` files
where pytest is not installed (the sandbox sees the host's ``/usr`` read-only and has no network).

Supports plain ``test_*`` functions and ``Test*`` classes, ``@pytest.fixture`` (by argument name,
with ``yield``), ``@pytest.mark.parametrize``, ``pytest.raises``, ``pytest.approx``, ``pytest.skip``,
``pytest.fail`` and the ``tmp_path`` fixture. Prints one line per test and ``SCORE: passed/total``;
exits 0 only when every test passed. Standard library only.
"""

import contextlib
import importlib.util
import inspect
import math
import sys
import tempfile
import traceback
import types
from pathlib import Path


class _Skip(Exception):
    pass


class _Fail(AssertionError):
    pass


class _Raises:
    def __init__(self, expected, match=None):
        self.expected, self.match, self.value = expected, match, None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise _Fail(f"DID NOT RAISE {self.expected}")
        if not issubclass(exc_type, self.expected):
            return False
        if self.match is not None:
            import re

            if not re.search(self.match, str(exc)):
                raise _Fail(f"pattern {self.match!r} not found in {exc!s}")
        self.value = exc
        return True


class _Approx:
    def __init__(self, expected, rel=1e-6, abs=1e-12):
        self.expected, self.rel, self.abs = expected, rel, abs

    def __eq__(self, other):
        if isinstance(self.expected, list | tuple):
            return len(other) == len(self.expected) and all(
                _Approx(e, self.rel, self.abs) == o for e, o in zip(self.expected, other, strict=False)
            )
        return math.isclose(other, self.expected, rel_tol=self.rel, abs_tol=self.abs)

    def __repr__(self):
        return f"approx({self.expected!r})"


class _Mark:
    def __getattr__(self, name):
        def mark(*args, **kwargs):
            if name == "parametrize":
                names, values = args[0], args[1]

                def deco(fn):
                    fn.__dict__.setdefault("_params", []).append((names, list(values)))
                    return fn

                return deco
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda fn: fn

        return mark


_FIXTURES = {}


def fixture(fn=None, **_kwargs):
    def register(f):
        _FIXTURES[f.__name__] = f
        return f

    return register(fn) if callable(fn) else register


def _install_fake_pytest():
    mod = types.ModuleType("pytest")
    mod.fixture = fixture
    mod.mark = _Mark()
    mod.raises = _Raises
    mod.approx = _Approx
    mod.skip = lambda reason="": (_ for _ in ()).throw(_Skip(reason))
    mod.fail = lambda msg="": (_ for _ in ()).throw(_Fail(msg))
    sys.modules["pytest"] = mod


def _expand(fn):
    cases = [{}]
    for names, values in reversed(getattr(fn, "_params", [])):
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        new = []
        for case in cases:
            for value in values:
                vals = value if len(names) > 1 else (value,)
                new.append({**case, **dict(zip(names, vals, strict=False))})
        cases = new
    return cases


def _call(fn, params, cleanups):
    kwargs = {}
    for name in inspect.signature(fn).parameters:
        if name in params:
            kwargs[name] = params[name]
        elif name == "tmp_path":
            kwargs[name] = Path(tempfile.mkdtemp())
        elif name in _FIXTURES:
            value = _call(_FIXTURES[name], {}, cleanups)
            if inspect.isgenerator(value):
                gen = value
                value = next(gen)
                cleanups.append(gen)
            kwargs[name] = value
    return fn(**kwargs)


def main(test_dir):
    _install_fake_pytest()
    sys.path.insert(0, test_dir)
    files = sorted(Path(test_dir).glob("test_*.py")) + sorted(Path(test_dir).glob("*_test.py"))
    passed = total = 0
    for path in files:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception:
            total += 1
            print(f"ERROR {path.name} (import)\n{traceback.format_exc()}")
            continue
        tests = []
        for name, obj in vars(module).items():
            if name.startswith("test") and inspect.isfunction(obj):
                tests.append((name, obj))
            elif name.startswith("Test") and inspect.isclass(obj):
                for mname, meth in vars(obj).items():
                    if mname.startswith("test") and inspect.isfunction(meth):
                        tests.append((f"{name}::{mname}", getattr(obj(), mname)))
        for name, fn in tests:
            for params in _expand(fn):
                label = f"{path.name}::{name}" + (f"[{params}]" if params else "")
                cleanups = []
                try:
                    _call(fn, params, cleanups)
                except _Skip:
                    print(f"SKIPPED {label}")
                    continue
                except BaseException as exc:
                    total += 1
                    print(f"FAILED {label}: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    for gen in cleanups:
                        with contextlib.suppress(StopIteration):
                            next(gen)
                total += 1
                passed += 1
                print(f"PASSED {label}")
    print(f"SCORE: {passed}/{total}" if total else "SCORE: 0/0 (no tests found)")
    return 0 if total and passed == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
