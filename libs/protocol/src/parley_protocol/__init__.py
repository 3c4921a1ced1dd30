"""Parley protocol: generated protobuf code, framing, validation rules, subject names, signatures.

The generated modules live in the `parley.v1` package (protoc output, see `make proto`);
`parley_protocol.pb` re-exports them under short names.
"""

from parley_protocol.errors import ErrorCode, ParleyError

__all__ = ["ErrorCode", "ParleyError"]
