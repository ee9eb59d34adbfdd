"""Generated Session protobufs (docs/session-protocol.md §2); regenerate with scripts/gen_proto.sh.

Also re-exports the protobuf runtime's exception and base classes, so the rest of
``bridge.session`` needs no untyped ``google.protobuf`` import of its own (no stubs for the
protobuf runtime are installed; the generated ``SessionProtos_pb2.pyi`` types the messages).
"""

from __future__ import annotations

from google.protobuf.message import (  # type: ignore[import-untyped]
    DecodeError as ProtobufDecodeError,
)
from google.protobuf.message import (  # type: ignore[import-untyped]
    EncodeError as ProtobufEncodeError,
)
from google.protobuf.message import (  # type: ignore[import-untyped]
    Message as ProtobufMessage,
)

__all__ = ["ProtobufDecodeError", "ProtobufEncodeError", "ProtobufMessage"]
