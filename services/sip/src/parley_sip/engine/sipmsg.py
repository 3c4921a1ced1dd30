"""Small readers of SIP message text (the INVITE an incoming call came with)."""

from __future__ import annotations

_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via"}


def parse_headers(msg: str) -> tuple[str, dict[str, str]]:
    """The start line and the headers (names lower-cased, repeats joined by ", ")."""
    head = msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    headers: dict[str, str] = {}
    for line in unfolded:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return lines[0].strip(), headers


def uri_of(value: str) -> str:
    """The URI of a From/To/Contact value (no display name, no header parameters)."""
    value = value.strip()
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def header_user(value: str) -> str:
    """The user part of the URI in a header value or a bare URI ('' when it has none)."""
    uri = uri_of(value)
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips", "tel"):
        return ""
    if scheme.lower() == "tel":
        return rest.split(";", 1)[0]
    user, at, _ = rest.partition("@")
    return user.split(";", 1)[0] if at else ""
