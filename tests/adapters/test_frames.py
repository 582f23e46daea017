"""Unit tests for the binary websocket frame parser (pod_studio.adapters.comfyui.frames).

Headers are the ones recorded in comfyui-traces 06 (types 1 and 4) and 15 (type 3).
"""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pod_studio.adapters.comfyui.frames import (
    PreviewImageFrame,
    ProgressTextFrame,
    parse_frame,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 113  # 121 bytes: 129-byte frame as recorded
META = {
    "node_id": "2",
    "prompt_id": "6b21c007-8d6c-4ea2-ae94-44ecb291dc26",
    "display_node_id": "2",
    "parent_node_id": None,
    "real_node_id": "2",
    "image_type": "image/png",
}


def test_type_1_preview_from_recorded_header() -> None:
    frame = bytes.fromhex("0000000100000002") + PNG
    assert len(frame) == 129
    parsed = parse_frame(frame)
    assert parsed == PreviewImageFrame(mime="image/png", data=PNG, event=1)
    assert parsed.prompt_id is None  # type 1 frames do not name their prompt


def test_type_1_jpeg_format() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x01" * 20
    parsed = parse_frame(struct.pack(">II", 1, 1) + jpeg)
    assert isinstance(parsed, PreviewImageFrame) and parsed.mime == "image/jpeg"


def test_type_4_preview_with_metadata() -> None:
    meta = json.dumps(META).encode()
    assert len(meta) == 0xA5  # 165 bytes, as recorded: header "00000004000000a5"
    frame = bytes.fromhex("00000004000000a5") + meta + PNG
    parsed = parse_frame(frame)
    assert isinstance(parsed, PreviewImageFrame)
    assert parsed.event == 4
    assert parsed.mime == "image/png"
    assert parsed.data == PNG and parsed.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert parsed.prompt_id == META["prompt_id"] and parsed.node_id == "2"
    assert parsed.metadata["real_node_id"] == "2"


def test_type_3_progress_text_from_recorded_header() -> None:
    frame = bytes.fromhex("0000000300000001") + b"2" + b"width: 40, height: 24\n batch size: 2"
    assert parse_frame(frame) == ProgressTextFrame(
        node_id="2", text="width: 40, height: 24\n batch size: 2"
    )


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00\x00\x00",
        bytes.fromhex("0000000100000002"),  # no image bytes
        bytes.fromhex("0000000100000009") + b"not an image",  # unknown format, no magic
        bytes.fromhex("0000000200000002") + PNG,  # type 2 is internal only
        bytes.fromhex("000000ff00000000") + PNG,  # unknown type
        bytes.fromhex("00000004000000ff") + b"{}",  # metadata longer than the frame
        bytes.fromhex("0000000400000003") + b"{x}" + PNG,  # metadata not JSON
        bytes.fromhex("0000000400000002") + b"[]" + PNG,  # metadata not an object
        bytes.fromhex("0000000400000002") + b"{}",  # no image
        bytes.fromhex("0000000300000010") + b"2",  # node id longer than the frame
        bytes.fromhex("0000000300000001") + b"\xff\xfe",  # not UTF-8
    ],
)
def test_garbage_frames_are_ignored(frame: bytes) -> None:
    assert parse_frame(frame) is None


def test_type_4_without_image_type_sniffs_the_magic() -> None:
    meta = b'{"prompt_id": "p"}'
    parsed = parse_frame(struct.pack(">II", 4, len(meta)) + meta + PNG)
    assert isinstance(parsed, PreviewImageFrame) and parsed.mime == "image/png"


@given(st.binary(max_size=300))
def test_parser_never_raises(data: bytes) -> None:
    result = parse_frame(data)
    assert result is None or isinstance(result, PreviewImageFrame | ProgressTextFrame)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=64))
def test_any_header_never_raises(word: int, tail: bytes) -> None:
    for event in (1, 3, 4):
        parse_frame(struct.pack(">II", event, word) + tail)
