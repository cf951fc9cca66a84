"""The request limits the API enforces (configurable through the server settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits on request sizes and page sizes; the proto comments state the defaults."""

    max_content_chars: int = 100_000
    """Longest message `content`, in characters (Unicode code points)."""
    max_batch_messages: int = 1_000
    """Most messages in one AppendMessages call."""
    max_batch_bytes: int = 4 * 1024 * 1024
    """Most UTF-8 bytes of content and tool-call text in one AppendMessages call."""
    max_metadata_bytes: int = 65_536
    """Largest `metadata` (of a session, a message, a checkpoint) and shared state: bytes
    of its protobuf encoding, or of its JSON text when given as text."""
    max_checkpoint_payload_bytes: int = 4 * 1024 * 1024
    """Largest checkpoint payload, and most payload bytes in one PutCheckpointWrites."""
    max_tool_calls: int = 128
    """Most tool calls on one message."""
    default_session_page_size: int = 50
    default_message_page_size: int = 100
    max_page_size: int = 1_000
    """Page sizes above this are lowered to it."""
    max_response_bytes: int = 8 * 1024 * 1024
    """A response must stay below this (the server's max send message size): pages
    stop short of it and say so with a next page token."""
