"""The ComfyUI sandbox behaves like the recorded ComfyUI 0.3.64 server (raw httpx + websockets)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from PIL import Image

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(20)

EMPTY_SAVE: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3368652},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t/empty"}},
}

WS_SAVE: dict[str, Any] = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 32, "height": 32, "batch_size": 3, "color": 65280},
    },
    "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
}


def txt2img(seed: int = 1, text: str = "a retro sunset cat") -> dict[str, Any]:
    return {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "pod-demo-xl.safetensors"},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 128, "height": 128, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": 20,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["8", 0], "filename_prefix": "pod/design"},
        },
    }


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ComfyUISandbox]:
    async with ComfyUISandbox(seconds_per_job=0.05) as sb:
        yield sb


@pytest_asyncio.fixture
async def http(sandbox: ComfyUISandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as client:
        yield client


def ws_url(sandbox: ComfyUISandbox, client_id: str | None) -> str:
    base = sandbox.url.replace("http://", "ws://") + "/ws"
    return f"{base}?clientId={client_id}" if client_id else base


async def recv_json(ws: Any) -> dict[str, Any]:
    while True:
        frame = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(frame, str):
            return dict(json.loads(frame))


async def collect_until_done(ws: Any, prompt_id: str) -> list[Any]:
    """Every frame (parsed text or raw bytes) up to ``executing {node: null}`` of ``prompt_id``."""
    frames: list[Any] = []
    while True:
        frame = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(frame, bytes):
            frames.append(frame)
            continue
        message = json.loads(frame)
        frames.append(message)
        data = message["data"]
        if (
            message["type"] == "executing"
            and data.get("node") is None
            and data.get("prompt_id") == prompt_id
        ):
            return frames


def types(frames: list[Any]) -> list[str]:
    return [
        f"bin{struct.unpack('>I', f[:4])[0]}" if isinstance(f, bytes) else f["type"] for f in frames
    ]


async def submit(
    http: httpx.AsyncClient, prompt: dict[str, Any], client_id: str | None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"prompt": prompt, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    return await http.post("/prompt", json=body)


@pytest.mark.asyncio
async def test_basic_run_message_order_matches_trace_02(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(sandbox, "c1")) as ws:
        first = await recv_json(ws)
        assert first == {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "c1"},
        }
        response = await submit(http, EMPTY_SAVE, "c1")
        assert response.status_code == 200
        body = response.json()
        assert body["number"] == 0 and body["node_errors"] == {}
        frames = await collect_until_done(ws, body["prompt_id"])
    assert types(frames) == [
        "status", "status", "execution_start", "execution_cached",
        "progress_state", "executing", "progress_state",
        "progress_state", "executing", "executed", "progress_state",
        "execution_success", "status", "executing",
    ]  # fmt: skip
    executed = next(f for f in frames if f["type"] == "executed")["data"]
    image = executed["output"]["images"][0]
    assert image == {"filename": "empty_00001_.png", "subfolder": "t", "type": "output"}
    last_state = [f for f in frames if f["type"] == "progress_state"][-1]["data"]["nodes"]
    assert {k: (v["value"], v["state"]) for k, v in last_state.items()} == {
        "1": (1.0, "finished"),
        "2": (1.0, "finished"),
    }
    view = await http.get("/view", params=image)
    assert view.status_code == 200
    assert view.headers["content-type"] == "image/png"
    assert view.headers["content-disposition"] == 'filename="empty_00001_.png"'
    with Image.open(io.BytesIO(view.content)) as png:
        assert png.size == (64, 64)
        assert json.loads(png.info["prompt"]) == EMPTY_SAVE
    history = (await http.get(f"/history/{body['prompt_id']}")).json()[body["prompt_id"]]
    assert history["prompt"] == [0, body["prompt_id"], EMPTY_SAVE, {"client_id": "c1"}, ["2"]]
    assert history["status"]["status_str"] == "success" and history["status"]["completed"]
    assert [m[0] for m in history["status"]["messages"]] == [
        "execution_start", "execution_cached", "execution_success",
    ]  # fmt: skip
    assert history["meta"]["2"] == {
        "node_id": "2", "display_node": "2", "parent_node": None, "real_node_id": "2",
    }  # fmt: skip
    assert sandbox.request_counts["POST /prompt"] == 1


@pytest.mark.asyncio
async def test_identical_prompt_is_served_from_cache(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(sandbox, "c2")) as ws:
        await recv_json(ws)
        first = (await submit(http, EMPTY_SAVE, "c2")).json()["prompt_id"]
        await collect_until_done(ws, first)
        second = (await submit(http, EMPTY_SAVE, "c2")).json()["prompt_id"]
        frames = await collect_until_done(ws, second)
        assert types(frames) == [
            "status", "status", "execution_start", "execution_cached", "executed",
            "progress_state", "execution_success", "status", "executing",
        ]  # fmt: skip
        assert frames[3]["data"]["nodes"] == ["1", "2"]
        assert frames[4]["data"]["output"]["images"][0]["filename"] == "empty_00001_.png"
        assert frames[5]["data"]["nodes"]["2"]["value"] == 1
        changed = json.loads(json.dumps(EMPTY_SAVE))
        changed["2"]["inputs"]["filename_prefix"] = "t/other"
        third = (await submit(http, changed, "c2")).json()["prompt_id"]
        frames = await collect_until_done(ws, third)
        assert frames[3]["data"]["nodes"] == ["1"]
        assert [f["data"]["node"] for f in frames if f["type"] == "executing"] == ["2", None]
    assert sorted(p.name for p in (sandbox.output_dir / "t").iterdir()) == [
        "empty_00001_.png",
        "other_00001_.png",
    ]
    assert sandbox.executed_prompt_ids == [first, second, third]


@pytest.mark.asyncio
async def test_validation_errors_are_400_and_consume_numbers(http: httpx.AsyncClient) -> None:
    missing = {
        "1": EMPTY_SAVE["1"],
        "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}},
    }
    response = await submit(http, missing, None)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "Required input is missing: images",
            "extra_info": {},
        },
        "node_errors": {
            "2": {
                "errors": [
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": "images",
                        "extra_info": {"input_name": "images"},
                    }
                ],
                "dependent_outputs": ["2"],
                "class_type": "SaveImage",
            }
        },
    }
    bad_ckpt = txt2img()
    bad_ckpt["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    response = await submit(http, bad_ckpt, None)
    assert response.status_code == 400
    error = response.json()["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == (
        "ckpt_name: 'nope.safetensors' not in "
        "['pod-demo-xl.safetensors', 'sd_xl_base_1.0.safetensors']"
    )
    too_wide = json.loads(json.dumps(EMPTY_SAVE))
    too_wide["1"]["inputs"]["width"] = 999999
    error = (await submit(http, too_wide, None)).json()["node_errors"]["1"]["errors"][0]
    assert error["type"] == "value_bigger_than_max"
    assert error["message"] == "Value 999999 bigger than max of 16384"
    unknown = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    assert (await submit(http, unknown, None)).json()["error"] == {
        "type": "invalid_prompt",
        "message": "Cannot execute because node NoSuchNode does not exist.",
        "details": "Node ID '#1'",
        "extra_info": {},
    }
    dangling = {
        "2": {"class_type": "SaveImage", "inputs": {"images": ["77", 0], "filename_prefix": "x"}}
    }
    error = (await submit(http, dangling, None)).json()["node_errors"]["2"]["errors"][0]
    assert error["type"] == "exception_during_validation" and error["details"] == "'77'"
    no_prompt = await http.post("/prompt", json={"client_id": "x"})
    assert no_prompt.status_code == 400 and no_prompt.json()["error"]["type"] == "no_prompt"
    partial = {**EMPTY_SAVE, "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    accepted = await submit(http, partial, None)
    assert accepted.status_code == 200
    assert accepted.json()["number"] == 6
    assert list(accepted.json()["node_errors"]) == ["3"]


@pytest.mark.asyncio
async def test_malformed_json_and_string_prompt_answer_500_text(http: httpx.AsyncClient) -> None:
    for content in (b"{not json", json.dumps({"prompt": "a string"}).encode()):
        response = await http.post("/prompt", content=content)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "500 Internal Server Error\n\nServer got itself in trouble"


@pytest.mark.asyncio
async def test_unknown_ids_answer_empty_objects_and_unknown_paths_404(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/history/does-not-exist")).json() == {}
    assert (await http.get("/api/history/does-not-exist")).json() == {}
    assert (await http.get("/object_info/NoSuchNode")).json() == {}
    missing = await http.get("/no/such/route")
    assert missing.status_code == 404 and missing.content == b""
    info = (await http.get("/api/object_info/CheckpointLoaderSimple")).json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "pod-demo-xl.safetensors",
        "sd_xl_base_1.0.safetensors",
    ]
    assert (await http.get("/models/checkpoints")).json() == [
        "pod-demo-xl.safetensors",
        "sd_xl_base_1.0.safetensors",
    ]
    stats = (await http.get("/system_stats")).json()
    assert stats["system"]["comfyui_version"] == "0.3.64"
    assert stats["devices"][0]["name"].startswith("cuda:0 ")


@pytest.mark.asyncio
async def test_targeted_interrupt_stops_running_prompt_and_next_one_runs(
    http: httpx.AsyncClient,
) -> None:
    async with ComfyUISandbox(seconds_per_job=3.0, steps=30) as sb:
        async with (
            httpx.AsyncClient(base_url=sb.url, timeout=5) as client,
            websockets.connect(ws_url(sb, "c3")) as ws,
        ):
            await recv_json(ws)
            slow = (await submit(client, txt2img(), "c3")).json()["prompt_id"]
            quick = (await submit(client, EMPTY_SAVE, "c3")).json()["prompt_id"]
            while True:
                message = await recv_json(ws)
                if message["type"] == "progress":
                    break
            assert (
                await client.post("/interrupt", json={"prompt_id": "not-running"})
            ).status_code == 200
            queue = (await client.get("/queue")).json()
            assert [item[1] for item in queue["queue_running"]] == [slow]
            assert [item[1] for item in queue["queue_pending"]] == [quick]
            assert (await client.post("/interrupt", json={"prompt_id": slow})).status_code == 200
            frames = await collect_until_done(ws, slow)
            interrupted = next(f for f in frames if f["type"] == "execution_interrupted")["data"]
            assert interrupted["node_id"] == "3" and interrupted["node_type"] == "KSampler"
            assert "3" not in interrupted["executed"]
            frames = await collect_until_done(ws, quick)
            assert "execution_success" in types(frames)
            history = (await client.get(f"/history/{slow}")).json()[slow]
            assert history["status"]["status_str"] == "error"
            assert history["status"]["messages"][-1][0] == "execution_interrupted"
            assert history["outputs"] == {}


@pytest.mark.asyncio
async def test_delete_pending_prompt_never_runs(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    sandbox.pause()
    first = (await submit(http, EMPTY_SAVE, None)).json()["prompt_id"]
    other = json.loads(json.dumps(EMPTY_SAVE))
    other["1"]["inputs"]["color"] = 1
    second = (await submit(http, other, None)).json()["prompt_id"]
    front = (await submit(http, EMPTY_SAVE, None, front=True)).json()
    assert front["number"] == -2
    queue = (await http.get("/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == [front["prompt_id"], second]
    assert await http.post("/queue", json={"delete": [second, first]}) is not None
    queue = (await http.get("/queue")).json()
    assert [item[1] for item in queue["queue_running"]] == [first]
    assert [item[1] for item in queue["queue_pending"]] == [front["prompt_id"]]
    sandbox.resume()
    async with websockets.connect(ws_url(sandbox, "watch")) as ws:
        while (await recv_json(ws))["data"]["status"]["exec_info"]["queue_remaining"] != 0:
            pass
    assert (await http.get(f"/history/{second}")).json() == {}
    assert set((await http.get("/history")).json()) == {first, front["prompt_id"]}
    assert sandbox.executed_prompt_ids == [first, front["prompt_id"]]


@pytest.mark.asyncio
async def test_restart_wipes_state_and_drops_sockets_without_close_frame(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(sandbox, "c4")) as ws:
        await recv_json(ws)
        prompt_id = (await submit(http, EMPTY_SAVE, "c4")).json()["prompt_id"]
        await collect_until_done(ws, prompt_id)
        port = sandbox.port
        await sandbox.restart()
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is None
    assert sandbox.port == port
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as client:
        assert (await client.get(f"/history/{prompt_id}")).json() == {}
        assert (await client.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
        view = await client.get(
            "/view", params={"filename": "empty_00001_.png", "subfolder": "t", "type": "output"}
        )
        assert view.status_code == 200
        again = (await submit(client, EMPTY_SAVE, None)).json()
        assert again["number"] == 0


@pytest.mark.asyncio
async def test_restart_with_downtime_refuses_connections(sandbox: ComfyUISandbox) -> None:
    task = asyncio.create_task(sandbox.restart(downtime=0.3))
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=2) as client:
        while not task.done():
            try:
                await client.get("/system_stats")
            except httpx.ConnectError:
                break
            except httpx.TransportError:
                continue
            await asyncio.sleep(0.01)
        else:
            pytest.fail("listener never went away")
        await task
        assert (await client.get("/system_stats")).status_code == 200


@pytest.mark.asyncio
async def test_reused_client_id_pitfall(sandbox: ComfyUISandbox, http: httpx.AsyncClient) -> None:
    old = await websockets.connect(ws_url(sandbox, "same"))
    await recv_json(old)
    async with websockets.connect(ws_url(sandbox, "same")) as new:
        assert (await recv_json(new))["data"]["sid"] == "same"
        await old.close()
        prompt_id = (await submit(http, EMPTY_SAVE, "same")).json()["prompt_id"]
        async with websockets.connect(ws_url(sandbox, "bystander")) as bystander:
            await recv_json(bystander)
            other = json.loads(json.dumps(EMPTY_SAVE))
            other["1"]["inputs"]["color"] = 7
            marker = (await submit(http, other, None)).json()["prompt_id"]
            while True:
                message = await recv_json(bystander)
                if (
                    message["type"] == "status"
                    and message["data"]["status"]["exec_info"]["queue_remaining"] == 0
                ):
                    history = (await http.get(f"/history/{marker}")).json()
                    if history:
                        break
        assert (await http.get(f"/history/{prompt_id}")).json()[prompt_id]["status"]["completed"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(new.recv(), 0.2)
        async with websockets.connect(ws_url(sandbox, "same")) as newer:
            await recv_json(newer)
            third = (await submit(http, txt2img(seed=3), "same")).json()["prompt_id"]
            frames = await collect_until_done(newer, third)
            assert "execution_success" in types(frames)


@pytest.mark.asyncio
async def test_view_path_checks(http: httpx.AsyncClient) -> None:
    assert (
        await http.get("/view", params={"filename": "../x.png", "type": "output"})
    ).status_code == 400
    escape = await http.get(
        "/view", params={"filename": "a.png", "subfolder": "../..", "type": "output"}
    )
    assert escape.status_code == 403 and escape.content == b""
    missing = await http.get(
        "/view", params={"filename": "nope.png", "subfolder": "", "type": "output"}
    )
    assert missing.status_code == 404
    assert (
        await http.get("/view", params={"filename": "a.png", "type": "bogus"})
    ).status_code == 400
    example = await http.get(
        "/view", params={"filename": "example.png", "type": "input", "preview": "jpeg;50"}
    )
    assert example.status_code == 200 and example.headers["content-type"] == "image/jpeg"


@pytest.mark.asyncio
async def test_binary_frames_type_1_without_and_type_4_with_feature_flags(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(sandbox, "plain")) as ws:
        await recv_json(ws)
        prompt_id = (await submit(http, WS_SAVE, "plain")).json()["prompt_id"]
        frames = await collect_until_done(ws, prompt_id)
    seq = types(frames)
    start = seq.index("executing", seq.index("executing") + 1) + 1
    assert seq[start : start + 9] == ["progress_state", "progress", "bin1"] * 3
    plain = [f for f in frames if isinstance(f, bytes)]
    assert all(f[:8].hex() == "0000000100000002" and f[8:12] == b"\x89PNG" for f in plain)

    async with websockets.connect(ws_url(sandbox, "flags")) as ws:
        await recv_json(ws)
        flags = {"supports_preview_metadata": True, "max_upload_size": 104857600}
        await ws.send(json.dumps({"type": "feature_flags", "data": flags}))
        assert await recv_json(ws) == {"type": "feature_flags", "data": flags}
        prompt_id = (await submit(http, WS_SAVE, "flags")).json()["prompt_id"]
        frames = await collect_until_done(ws, prompt_id)
    seq = types(frames)
    start = seq.index("executing") + 1
    assert seq[start : start + 9] == ["progress_state", "bin4", "progress"] * 3
    frame = next(f for f in frames if isinstance(f, bytes))
    (length,) = struct.unpack(">I", frame[4:8])
    assert length == 165
    assert json.loads(frame[8 : 8 + length]) == {
        "node_id": "2",
        "prompt_id": prompt_id,
        "display_node_id": "2",
        "parent_node_id": None,
        "real_node_id": "2",
        "image_type": "image/png",
    }
    assert frame[8 + length : 12 + length] == b"\x89PNG"
    assert frames[3]["data"]["nodes"] == ["1"]  # EmptyImage cached server-wide from "plain"
    assert (await http.get(f"/history/{prompt_id}")).json()[prompt_id]["outputs"] == {}


@pytest.mark.asyncio
async def test_ksampler_previews_and_distinct_pictures(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(ws_url(sandbox, "k")) as ws:
        await recv_json(ws)
        files = []
        for seed in (1, 2):
            prompt_id = (await submit(http, txt2img(seed=seed), "k")).json()["prompt_id"]
            frames = await collect_until_done(ws, prompt_id)
            progress = [
                f["data"]["value"]
                for f in frames
                if not isinstance(f, bytes) and f["type"] == "progress"
            ]
            assert progress == list(range(1, sandbox.steps + 1))
            previews = [f for f in frames if isinstance(f, bytes)]
            assert len(previews) == sandbox.steps // sandbox.preview_every
            assert previews[0][:8].hex() == "0000000100000001"  # type 1, JPEG
            executed = next(
                f for f in frames if not isinstance(f, bytes) and f["type"] == "executed"
            )
            files.append(executed["data"]["output"]["images"][0])
    pictures = []
    for image in files:
        content = (await http.get("/view", params=image)).content
        with Image.open(io.BytesIO(content)) as png:
            pictures.append(png.convert("RGB").tobytes())
            assert png.size == (128, 128)
    assert pictures[0] != pictures[1]


@pytest.mark.asyncio
async def test_runtime_error_shape_and_injected_error(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    escaping = json.loads(json.dumps(EMPTY_SAVE))
    escaping["2"]["inputs"]["filename_prefix"] = "../../escape"
    async with websockets.connect(ws_url(sandbox, "e")) as ws:
        await recv_json(ws)
        prompt_id = (await submit(http, escaping, "e")).json()["prompt_id"]
        frames = await collect_until_done(ws, prompt_id)
        assert types(frames)[-3:] == ["execution_error", "status", "executing"]
        error = frames[-3]["data"]
        assert set(error) == {
            "prompt_id", "node_id", "node_type", "executed", "exception_message",
            "exception_type", "traceback", "current_inputs", "current_outputs", "timestamp",
        }  # fmt: skip
        assert error["node_type"] == "SaveImage" and error["executed"] == ["1"]
        assert (
            "Saving image outside the output folder is not allowed." in error["exception_message"]
        )
        assert error["current_inputs"]["filename_prefix"] == ["../../escape"]
        history = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]
        assert history["status"]["status_str"] == "error"
        assert history["status"]["messages"][-1][0] == "execution_error"

        sandbox.error_next_prompt("KSampler", "boom: out of memory")
        failed = (await submit(http, txt2img(seed=9), "e")).json()["prompt_id"]
        frames = await collect_until_done(ws, failed)
        error = next(f for f in frames if f["type"] == "execution_error")["data"]
        assert (
            error["node_type"] == "KSampler"
            and error["exception_message"] == "boom: out of memory\n"
        )
        retried = (await submit(http, txt2img(seed=9), "e")).json()["prompt_id"]
        assert "execution_success" in types(await collect_until_done(ws, retried))


@pytest.mark.asyncio
async def test_origin_check_and_fault_knobs(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    foreign = await http.get("/system_stats", headers={"Origin": "http://localhost:1420"})
    assert foreign.status_code == 403 and foreign.content == b""
    assert (await http.get("/system_stats", headers={"Origin": "null"})).status_code == 200
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            ws_url(sandbox, "o"), origin=websockets.Origin("http://localhost:1420")
        )
    sandbox.fail_next(2, status=503, match="/queue")
    assert (await http.get("/queue")).status_code == 503
    assert (await http.get("/system_stats")).status_code == 200
    assert (await http.get("/api/queue")).status_code == 503
    assert (await http.get("/queue")).status_code == 200
    sandbox.malformed_next(1, match="/history")
    garbled = await http.get("/history")
    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.content)
    sandbox.fault_rate = 1.0
    assert (await http.get("/features")).status_code == 500
    async with websockets.connect(ws_url(sandbox, "ok")) as ws:
        assert (await recv_json(ws))["type"] == "status"
    sandbox.fault_rate = 0.0
    assert sandbox.request_counts["GET /queue"] == 3


@pytest.mark.asyncio
async def test_commit_then_timeout_queues_the_prompt_and_loses_the_reply(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    sandbox.commit_then_timeout_next(1, mode="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("/prompt", json={"prompt": txt2img(seed=5), "prompt_id": "lost-reply"})
    queue = (await http.get("/queue")).json()
    history = (await http.get("/history/lost-reply")).json()
    queued = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
    assert "lost-reply" in queued or "lost-reply" in history
    ok = await http.post("/prompt", json={"prompt": txt2img(seed=6)})
    assert ok.status_code == 200


@pytest.mark.asyncio
async def test_upload_dedupe_and_load_image(
    sandbox: ComfyUISandbox, http: httpx.AsyncClient
) -> None:
    def png(color: str) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
        return buffer.getvalue()

    async def upload(data: bytes, **fields: str) -> httpx.Response:
        return await http.post(
            "/upload/image",
            files={"image": ("u.png", data, "image/png")},
            data={"subfolder": "s", **fields},
        )

    assert (await upload(png("red"))).json() == {"name": "u.png", "subfolder": "s", "type": "input"}
    assert (await upload(png("red"))).json()["name"] == "u.png"
    assert (await upload(png("blue"))).json()["name"] == "u (1).png"
    assert (await upload(png("blue"), overwrite="true")).json()["name"] == "u.png"
    assert (await upload(png("green"), subfolder="../..")).status_code == 400
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "s/u.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "t/loaded"},
        },
    }
    async with websockets.connect(ws_url(sandbox, "u")) as ws:
        await recv_json(ws)
        prompt_id = (await submit(http, workflow, "u")).json()["prompt_id"]
        assert "execution_success" in types(await collect_until_done(ws, prompt_id))
    workflow["1"]["inputs"]["image"] = "missing.png"
    error = (await submit(http, workflow, "u")).json()["node_errors"]["1"]["errors"][0]
    assert error["details"] == "image - Invalid image file: missing.png"


def test_server_thread_start_call_stop() -> None:
    sandbox = ComfyUISandbox(seconds_per_job=0.01)
    with ServerThread(sandbox) as thread:
        assert thread.url.startswith("http://127.0.0.1:")
        response = httpx.get(thread.url + "/prompt", timeout=5)
        assert response.json() == {"exec_info": {"queue_remaining": 0}}
        assert thread.call(lambda: sandbox.request_counts["GET /prompt"]) == 1
        thread.call(sandbox.drop_websockets)
        client_id = uuid.uuid4().hex
        body = {"prompt": EMPTY_SAVE, "client_id": client_id}
        assert httpx.post(thread.url + "/prompt", json=body, timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(thread.url + "/prompt", timeout=2)
