"""Small decoders the static analyzer applies to literal shell data.

Everything here works on literal text only (nothing is executed): ANSI-C ``$'...'`` quoting, the
escapes ``echo -e`` and ``printf`` understand, and the byte filters agents chain in front of a shell
to hide a payload (``base64 -d``, ``base32 -d``, ``xxd -r -p``, ``rev``, ``tr`` rot13, gunzip).
Decoders return ``None`` when the input is not what they expect, never raise.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}

_ANSI_RE = re.compile(
    r"\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|([0-7]{1,3})|c(.)|(.))", re.DOTALL
)


def _escape_sub(match: re.Match[str], *, octal_zero: bool = False) -> str:
    hex2, u4, u8, octal, ctrl, other = match.groups()
    if hex2 is not None:
        return chr(int(hex2, 16))
    if u4 is not None or u8 is not None:
        code = int(u4 or u8, 16)
        return chr(code) if code <= 0x10FFFF else match.group(0)
    if octal is not None:
        if octal_zero and octal.startswith("0"):
            octal = octal[1:] or "0"
        return chr(int(octal, 8) & 0xFF)
    if ctrl is not None:
        return chr(ord(ctrl) & 0x1F)
    if other in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[other]
    return "\\" + other


def decode_ansi_c(body: str) -> str:
    """Decode the inside of a bash ``$'...'`` string (``\\x78``, ``\\170``, ``\\u0078``, ``\\n``...)."""
    if "\\" not in body:
        return body
    return _ANSI_RE.sub(_escape_sub, body)


_ECHO_RE = re.compile(r"\\(?:x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|(0[0-7]{0,3})|c(.)|(.))")


def decode_echo_escapes(text: str) -> str:
    r"""Escapes as ``echo -e`` and ``printf``'s format interpret them (``\0NNN`` octal, ``\xHH``)."""
    if "\\" not in text:
        return text
    return _ECHO_RE.sub(lambda m: _escape_sub(m, octal_zero=True), text)


def decode_printf_format(text: str) -> str:
    r"""Escapes in a printf format string (``\NNN`` octal without a leading zero, ``\xHH``...)."""
    if "\\" not in text:
        return text
    return _ANSI_RE.sub(_escape_sub, text)


def printf_output(args: list[str]) -> str:
    """Best-effort output of ``printf FMT ARGS...`` (``%s``, ``%b``, ``%d``, ``%c``, ``%%``)."""
    if not args:
        return ""
    fmt = decode_printf_format(args[0])
    rest = list(args[1:])
    out: list[str] = []
    i = 0
    while True:
        consumed = False
        i = 0
        while i < len(fmt):
            ch = fmt[i]
            if ch == "%" and i + 1 < len(fmt):
                m = re.match(r"%[-+ #0]*\d*(?:\.\d+)?([sbdiucxXo%])", fmt[i:])
                if m:
                    conv = m.group(1)
                    if conv == "%":
                        out.append("%")
                    else:
                        value = rest.pop(0) if rest else ""
                        consumed = True
                        if conv == "b":
                            value = decode_echo_escapes(value)
                        elif conv == "c":
                            value = value[:1]
                        out.append(value)
                    i += len(m.group(0))
                    continue
            out.append(ch)
            i += 1
        if not rest or not consumed:
            break
    return "".join(out)


_B64_CLEAN = re.compile(r"[^A-Za-z0-9+/=_-]")


def b64decode_loose(data: bytes) -> bytes | None:
    """Decode base64 the way ``base64 -d`` (or ``-di``) would: whitespace ignored, padding repaired."""
    text = _B64_CLEAN.sub("", data.decode("latin-1"))
    if not text:
        return None
    text = text.rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None


def b32decode_loose(data: bytes) -> bytes | None:
    text = re.sub(r"[^A-Za-z2-7=]", "", data.decode("latin-1")).upper().rstrip("=")
    if not text:
        return None
    text += "=" * (-len(text) % 8)
    try:
        return base64.b32decode(text)
    except (binascii.Error, ValueError):
        return None


def hexdecode_loose(data: bytes) -> bytes | None:
    text = re.sub(r"[^0-9A-Fa-f]", "", data.decode("latin-1"))
    if len(text) % 2:
        text = text[:-1]
    try:
        return bytes.fromhex(text) if text else None
    except ValueError:
        return None


def gunzip_loose(data: bytes) -> bytes | None:
    """Decompress gzip, zlib or raw deflate data; ``None`` when it is none of those."""
    for wbits in (47, -15):
        try:
            return zlib.decompressobj(wbits).decompress(data, 1 << 20)
        except zlib.error:
            continue
    return None


def _expand_tr_set(spec: str) -> str:
    spec = decode_echo_escapes(spec)
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            start, end = ord(spec[i]), ord(spec[i + 2])
            if start <= end and end - start < 512:
                out.extend(chr(c) for c in range(start, end + 1))
                i += 3
                continue
        out.append(spec[i])
        i += 1
    return "".join(out)


def tr_translate(data: bytes, set1: str, set2: str) -> bytes | None:
    """``tr SET1 SET2`` with ranges (enough for rot13 and simple substitution ciphers)."""
    src, dst = _expand_tr_set(set1), _expand_tr_set(set2)
    if not src or not dst or len(src) > 512:
        return None
    dst = dst + dst[-1] * (len(src) - len(dst))
    table = {ord(a): b for a, b in zip(src, dst, strict=False)}
    return data.decode("latin-1").translate(table).encode("latin-1", "replace")


def looks_textual(data: bytes) -> bool:
    """True when decoded bytes look like text worth analysing as a script."""
    if not data:
        return False
    sample = data[:4096]
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13))
    return printable / len(sample) > 0.85


def to_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
