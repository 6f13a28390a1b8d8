"""Text I/O of `*.theory` files: parse into tokens, render tokens back.

Files hold tokens separated by any whitespace; `#` starts a comment; BOS and
EOS may be omitted. Every error is a `TheoryError` whose message is one line
naming the file, the line, the token and what was allowed there.
"""

from __future__ import annotations

from pathlib import Path

from . import recognizer


MAX_TEXT_BYTES = 1 << 20   # a larger theory, prompt or config file is not one (e.g. /dev/zero)


class TheoryError(ValueError):
    """A theory text the grammar rejects; str() is a one-line message for users."""


def read_text_file(path: str | Path, what: str, error: type[Exception] = ValueError,
                   limit: int = MAX_TEXT_BYTES) -> str:
    """The text of a small UTF-8 file (a BOM is accepted and dropped), or `error` with one line
    naming the file: it cannot be read (missing, a directory, no permission), it is larger
    than `limit` bytes (/dev/zero), or it is not text (undecodable, or a NUL byte)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from None
    if len(data) > limit:
        raise error(f"{path}: not a {what} file: larger than {limit} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not a {what} file: not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise error(f"{path}: not a {what} file: binary data (a NUL byte)")
    return text


def tokenize(text: str) -> tuple[list[str], list[int]]:
    """Tokens of a theory text and the (1-based) line of each."""
    tokens, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        for tok in line.split("#", 1)[0].split():
            tokens.append(tok)
            lines.append(number)
    return tokens, lines


def parse_theory_text(text: str, source: str = "<string>", max_len: int | None = None) -> list[str]:
    """Token strings BOS..EOS of a valid theory text, or TheoryError."""
    tokens, lines = tokenize(text)
    if not tokens:
        raise TheoryError(f"{source}:1: empty theory (no tokens)")
    if tokens[0] != "BOS":
        tokens, lines = ["BOS"] + tokens, [lines[0]] + lines
    if tokens[-1] == "END_TERMS":
        tokens, lines = tokens + ["EOS"], lines + [lines[-1]]
    result = recognizer.recognise(tokens, max_len)
    if not result.accepted:
        raise TheoryError(_locate(result, tokens, lines, source))
    return tokens


def _locate(result: recognizer.Recognition, tokens: list[str], lines: list[int], source: str) -> str:
    """One-line message: file, line, token, what went wrong and what was allowed."""
    if result.token is None:  # ran out of tokens: point at the last one
        return f"{source}:{lines[-1]}: after '{tokens[-1]}': {result.error}"
    message = result.error
    if message.startswith(f"'{result.token}' "):
        message = message[len(result.token) + 3:]
    elif message.startswith("unknown token"):
        return f"{source}:{lines[result.position]}: {message}"
    return f"{source}:{lines[result.position]}: token '{result.token}' {message}"


def load_theory(path: str | Path, max_len: int | None = None) -> list[str]:
    """Token strings BOS..EOS of a `.theory` file, or TheoryError naming the file."""
    text = read_text_file(path, "theory", TheoryError)
    return parse_theory_text(text, str(path), max_len)


def parse_prompt_text(text: str, source: str = "<prompt>") -> list[str]:
    """A prompt: a prefix of a theory (BOS added if missing), checked token by token. A text
    without tokens (empty, or only comments) is an error, not the from-scratch prompt."""
    tokens, lines = tokenize(text)
    if not tokens:
        raise TheoryError(f"{source}:1: empty prompt (no tokens); a from-scratch run is "
                          f"train.task: from_scratch")
    if not tokens or tokens[0] != "BOS":
        tokens, lines = ["BOS"] + tokens, [lines[0] if lines else 1] + lines
    result = recognizer.recognise(tokens)
    if result.accepted or result.token is None:  # complete, or a valid unfinished prefix
        return tokens
    raise TheoryError(_locate(result, tokens, lines, source))


def load_prompt(path: str | Path) -> list[str]:
    """A prompt file (`parse_prompt_text`), or TheoryError naming the file."""
    return parse_prompt_text(read_text_file(path, "prompt", TheoryError), str(path))


def render_theory(tokens: list[str], names: dict[int, str] | None = None) -> str:
    """The indented, commented layout of examples/sm.theory (without BOS/EOS).

    `names` optionally maps a field index (0-based) to a label shown after `# m_k`.
    """
    body = [t for t in tokens if t not in ("BOS", "EOS", "PAD")]
    lines: list[str] = []
    comments: list[str] = []
    i = 0
    field_number = 0
    current: list[str] = []

    def flush(comment: str = "") -> None:
        lines.append("  " + " ".join(current))
        comments.append(comment)
        current.clear()

    while i < len(body):
        tok = body[i]
        if tok == "GAUGE":
            j = body.index("END_GAUGE", i)
            lines.append(" ".join(body[i:j + 1]))
            comments.append("")
            i = j + 1
            continue
        if tok in ("FIELDS", "END_FIELDS", "TERMS", "END_TERMS"):
            lines.append(tok)
            comments.append("")
        elif tok == "END":
            current.append(tok)
            if current[0] in ("FERMION", "SCALAR"):
                field_number += 1
                label = (names or {}).get(field_number - 1, "")
                flush(f"# m_{field_number}" + (f"  {label}" if label else ""))
            else:
                flush()
        else:
            current.append(tok)
        i += 1
    width = max((len(line) for line, c in zip(lines, comments) if c), default=0)
    return "\n".join(f"{line.ljust(width)}   {c}" if c else line
                     for line, c in zip(lines, comments)) + "\n"
