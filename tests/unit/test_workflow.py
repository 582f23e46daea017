"""Unit tests for the workflow graph model (pod_studio.domain.workflow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pod_studio.domain.errors import WorkflowError
from pod_studio.domain.models import JobSpec
from pod_studio.domain.workflow import (
    InputRef,
    WorkflowMapping,
    WorkflowTemplate,
    preflight_graph,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DEFAULT = ROOT / "resources" / "workflows" / "default_txt2img.json"


def ref(text: str) -> InputRef:
    return InputRef.parse(text)


def job(**kw: Any) -> JobSpec:
    base: dict[str, Any] = {"job_id": "j1", "prompt": "a cat astronaut", "seed": 42}
    base.update(kw)
    return JobSpec(**base)


@pytest.fixture
def default() -> WorkflowTemplate:
    return WorkflowTemplate.from_json_text(DEFAULT.read_text(encoding="utf-8"), name="default")


@pytest.fixture
def recorded_object_info() -> dict[str, Any]:
    data = json.loads((DATA / "comfyui_object_info_subset.json").read_text(encoding="utf-8"))
    info: dict[str, Any] = data["object_info"]
    return info


# An SDXL base + refiner graph: KSamplerAdvanced with noise_seed, CLIPTextEncodeSDXL, the
# negative goes through a ConditioningCombine, the latent is EmptyLatentImage.
SDXL: dict[str, Any] = {
    "10": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
    },
    "11": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"},
    },
    "20": {
        "class_type": "CLIPTextEncodeSDXL",
        "inputs": {
            "width": 4096,
            "height": 4096,
            "crop_w": 0,
            "crop_h": 0,
            "target_width": 4096,
            "target_height": 4096,
            "text_g": "a lighthouse",
            "text_l": "a lighthouse",
            "clip": ["10", 1],
        },
    },
    "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
    "22": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["10", 1]}},
    "23": {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": ["21", 0], "conditioning_2": ["22", 0]},
    },
    "30": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 896, "height": 1152, "batch_size": 2},
    },
    "40": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "enable",
            "noise_seed": 7,
            "steps": 30,
            "cfg": 7.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "start_at_step": 0,
            "end_at_step": 24,
            "return_with_leftover_noise": "enable",
            "model": ["10", 0],
            "positive": ["20", 0],
            "negative": ["23", 0],
            "latent_image": ["30", 0],
        },
    },
    "41": {
        "class_type": "KSamplerAdvanced",
        "inputs": {
            "add_noise": "disable",
            "noise_seed": 0,
            "steps": 30,
            "cfg": 7.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "start_at_step": 24,
            "end_at_step": 10000,
            "return_with_leftover_noise": "disable",
            "model": ["11", 0],
            "positive": ["20", 0],
            "negative": ["23", 0],
            "latent_image": ["40", 0],
        },
    },
    "50": {"class_type": "VAEDecode", "inputs": {"samples": ["41", 0], "vae": ["11", 2]}},
    "60": {"class_type": "SaveImage", "inputs": {"images": ["50", 0], "filename_prefix": "sdxl"}},
    "61": {"class_type": "PreviewImage", "inputs": {"images": ["50", 0]}},
}

# A Flux-style graph: SamplerCustomAdvanced + RandomNoise + BasicGuider, UNETLoader.
FLUX: dict[str, Any] = {
    "1": {
        "class_type": "UNETLoader",
        "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"},
    },
    "2": {
        "class_type": "DualCLIPLoader",
        "inputs": {
            "clip_name1": "t5xxl_fp16.safetensors",
            "clip_name2": "clip_l.safetensors",
            "type": "flux",
        },
    },
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 0]}},
    "4": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["3", 0]}},
    "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 99}},
    "6": {
        "class_type": "EmptySD3LatentImage",
        "inputs": {"width": 1024, "height": 768, "batch_size": 1},
    },
    "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "8": {
        "class_type": "BasicScheduler",
        "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 20, "denoise": 1.0},
    },
    "9": {
        "class_type": "SamplerCustomAdvanced",
        "inputs": {
            "noise": ["5", 0],
            "guider": ["4", 0],
            "sampler": ["7", 0],
            "sigmas": ["8", 0],
            "latent_image": ["6", 0],
        },
    },
    "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 0]}},
    "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "flux"}},
}


# --- detection -------------------------------------------------------------------------------


def test_default_workflow_detection(default: WorkflowTemplate) -> None:
    assert default.mapping == WorkflowMapping(
        positive=ref("6.text"),
        negative=ref("7.text"),
        seed=ref("3.seed"),
        width=ref("5.width"),
        height=ref("5.height"),
        batch=ref("5.batch_size"),
        checkpoint=ref("4.ckpt_name"),
        output_nodes=["9"],
    )
    assert default.node_class("3") == "KSampler"
    g = default.graph
    assert g["4"]["inputs"]["ckpt_name"] == "pod-demo-xl.safetensors"
    assert g["5"]["inputs"] == {"width": 1024, "height": 1024, "batch_size": 1}
    assert g["3"]["inputs"]["steps"] == 25 and g["3"]["inputs"]["sampler_name"] == "euler"
    assert g["9"]["inputs"]["filename_prefix"] == "pod_studio/img"


def test_sdxl_detection_follows_combiner_and_prefers_noise_adding_sampler() -> None:
    m = WorkflowTemplate.from_graph(SDXL).mapping
    assert m.positive == ref("20.text_g")
    assert m.negative == ref("21.text")  # through ConditioningCombine, first branch
    assert m.seed == ref("40.noise_seed")  # the base sampler adds the noise
    assert (m.width, m.height, m.batch) == (ref("30.width"), ref("30.height"), ref("30.batch_size"))
    assert m.checkpoint == ref("10.ckpt_name")  # feeds the main sampler's model
    assert m.output_nodes == ["60", "61"]


def test_flux_detection_guider_random_noise_and_unet() -> None:
    m = WorkflowTemplate.from_graph(FLUX).mapping
    assert m.positive == ref("3.text")
    assert m.negative is None
    assert m.seed == ref("5.noise_seed")
    assert m.width == ref("6.width") and m.height == ref("6.height")
    assert m.checkpoint == ref("1.unet_name")
    assert m.output_nodes == ["11"]


def test_output_nodes_from_object_info_flags() -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "MyUploader", "inputs": {"images": ["1", 0]}},
    }
    assert WorkflowTemplate.from_graph(graph).mapping.output_nodes == []
    info = {"MyUploader": {"output_node": True}, "EmptyImage": {"output_node": False}}
    assert WorkflowTemplate.from_graph(graph, object_info=info).mapping.output_nodes == ["2"]


def test_text_linked_from_a_primitive_node_maps_to_the_primitive() -> None:
    graph = json.loads(DEFAULT.read_text(encoding="utf-8"))
    graph["6"]["inputs"]["text"] = ["20", 0]
    graph["20"] = {"class_type": "PrimitiveString", "inputs": {"value": "from a primitive"}}
    t = WorkflowTemplate.from_graph(graph)
    assert t.mapping.positive == ref("20.value")
    g = t.build(job())
    assert g["20"]["inputs"]["value"] == "a cat astronaut"
    assert g["6"]["inputs"]["text"] == ["20", 0]  # the link stays


# --- errors ----------------------------------------------------------------------------------


def test_ui_format_is_rejected_with_export_instructions() -> None:
    text = (DATA / "comfyui_ui_format_workflow.json").read_text(encoding="utf-8")
    with pytest.raises(WorkflowError) as info:
        WorkflowTemplate.from_json_text(text)
    msg = str(info.value)
    assert "UI-format" in msg
    assert "Settings → Dev mode" in msg and "Workflow → Export (API)" in msg


def test_not_json_reports_line_and_column() -> None:
    with pytest.raises(WorkflowError) as info:
        WorkflowTemplate.from_json_text('{\n  "3": {"class_type": "KSampler",\n  }\n}', name="x")
    msg = info.value.message
    assert "not valid JSON" in msg and "line 3" in msg and "column 3" in msg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('"hello"', "must be a JSON object"),
        ("{}", "empty"),
        ('{"1": {"inputs": {}}}', "node '1' has no class_type"),
        ('{"1": 5}', "node '1' is not an object"),
        ('{"1": {"class_type": "X", "inputs": []}}', "inputs that are not an object"),
    ],
)
def test_invalid_workflows_are_named(text: str, needle: str) -> None:
    with pytest.raises(WorkflowError) as info:
        WorkflowTemplate.from_json_text(text)
    assert needle in info.value.message


def test_prompt_body_wrapper_is_unwrapped(default: WorkflowTemplate) -> None:
    body = {"prompt": default.graph, "client_id": "abc"}
    assert WorkflowTemplate.from_graph(body).mapping == default.mapping


def test_build_without_positive_input_fails_clearly() -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    t = WorkflowTemplate.from_graph(graph, name="plain")
    assert t.mapping.positive is None
    with pytest.raises(WorkflowError, match="no input POD Studio can put the prompt into"):
        t.build(job())


# --- overrides and build ---------------------------------------------------------------------


def test_build_applies_job_values(default: WorkflowTemplate) -> None:
    before = default.graph
    g = default.build(
        job(negative="ugly", width=768, height=512, checkpoint="sd_xl_base_1.0.safetensors"),
        filename_prefix="batch7/img",
    )
    assert g["6"]["inputs"]["text"] == "a cat astronaut"
    assert g["7"]["inputs"]["text"] == "ugly"
    assert g["3"]["inputs"]["seed"] == 42
    assert (g["5"]["inputs"]["width"], g["5"]["inputs"]["height"]) == (768, 512)
    assert g["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert g["9"]["inputs"]["filename_prefix"] == "batch7/img"
    assert default.graph == before  # the template is not changed
    g["3"]["inputs"]["seed"] = 1
    assert default.build(job())["3"]["inputs"]["seed"] == 42  # deep copies


def test_build_keeps_workflow_values_the_job_leaves_empty(default: WorkflowTemplate) -> None:
    g = default.build(job())
    assert g["7"]["inputs"]["text"] == default.graph["7"]["inputs"]["text"]
    assert g["5"]["inputs"]["width"] == 1024
    assert g["4"]["inputs"]["ckpt_name"] == "pod-demo-xl.safetensors"


def test_build_sdxl_sets_both_text_inputs_and_seed() -> None:
    g = WorkflowTemplate.from_graph(SDXL).build(job(negative="lowres"))
    assert g["20"]["inputs"]["text_g"] == "a cat astronaut"
    assert g["20"]["inputs"]["text_l"] == "a cat astronaut"
    assert g["21"]["inputs"]["text"] == "lowres"
    assert g["22"]["inputs"]["text"] == "watermark"
    assert g["40"]["inputs"]["noise_seed"] == 42 and g["41"]["inputs"]["noise_seed"] == 0
    assert g["60"]["inputs"]["filename_prefix"] == "pod_studio/img"
    assert "filename_prefix" not in g["61"]["inputs"]


def test_with_override_remaps_a_field(default: WorkflowTemplate) -> None:
    t = default.with_override("negative", "6.text").with_override("positive", "7.text")
    assert t.mapping.positive == ref("7.text") and t.mapping.negative == ref("6.text")
    g = t.build(job(negative="bad"))
    assert g["7"]["inputs"]["text"] == "a cat astronaut" and g["6"]["inputs"]["text"] == "bad"
    assert default.mapping.positive == ref("6.text")  # original unchanged
    assert default.with_override("seed", None).build(job())["3"]["inputs"]["seed"] == 0


@pytest.mark.parametrize(
    ("field", "target", "needle"),
    [
        ("seed", "99.seed", "node 99 does not exist"),
        ("seed", "seed", "not a node input reference"),
        ("colour", "3.seed", "unknown field 'colour'"),
    ],
)
def test_with_override_validates(
    default: WorkflowTemplate, field: str, target: str, needle: str
) -> None:
    with pytest.raises(WorkflowError, match=needle):
        default.with_override(field, target)


def test_set_values_and_job_overrides_apply_last(default: WorkflowTemplate) -> None:
    t = default.with_values({"3.steps": 12, "3.seed": 5, "9.filename_prefix": "fixed/x"})
    g = t.build(job(overrides={"3.cfg": 4.5, "3.steps": 8}))
    assert g["3"]["inputs"]["seed"] == 5  # set_values beat the detected seed
    assert g["3"]["inputs"]["steps"] == 8  # the job's overrides beat set_values
    assert g["3"]["inputs"]["cfg"] == 4.5
    assert g["9"]["inputs"]["filename_prefix"] == "fixed/x"
    with pytest.raises(WorkflowError, match="node 77 does not exist"):
        default.build(job(overrides={"77.x": 1}))
    with pytest.raises(WorkflowError, match="node 12 does not exist"):
        default.with_values({"12.steps": 3})


# --- preflight -------------------------------------------------------------------------------


def test_preflight_against_recorded_object_info(
    default: WorkflowTemplate, recorded_object_info: dict[str, Any]
) -> None:
    problems = default.preflight(recorded_object_info)
    # The recorded server has KSampler and SaveImage but none of the model-loading classes.
    assert problems == [
        "Node class 'CheckpointLoaderSimple' (node 4) is not installed on the server",
        "Node class 'EmptyLatentImage' (node 5) is not installed on the server",
        "Node class 'CLIPTextEncode' (node 6) is not installed on the server",
        "Node class 'CLIPTextEncode' (node 7) is not installed on the server",
        "Node class 'VAEDecode' (node 8) is not installed on the server",
    ]


def test_preflight_names_bad_combo_values(recorded_object_info: dict[str, Any]) -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "nope",
                "width": 4,
                "height": 4,
                "crop": "center",
            },
        },
        "3": {"class_type": "LoadImage", "inputs": {"image": "sub/uploaded.png"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "p"}},
    }
    problems = preflight_graph(graph, recorded_object_info)
    assert problems == [
        "Node 2 (ImageScale) input upscale_method: 'nope' is not one of: nearest-exact, "
        "bilinear, area, bicubic, lanczos"
    ]  # LoadImage uploads in subfolders are valid although not listed


def test_preflight_names_missing_models(
    default: WorkflowTemplate, recorded_object_info: dict[str, Any]
) -> None:
    info = dict(recorded_object_info)
    for cls in ("EmptyLatentImage", "CLIPTextEncode", "VAEDecode"):
        info[cls] = {"input": {"required": {}}}
    info["CheckpointLoaderSimple"] = {
        "input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"], {}]}},
        "output_node": False,
    }
    assert default.preflight(info) == [
        "Model 'pod-demo-xl.safetensors' for node 4 input ckpt_name is not on the server; "
        "it has: a.safetensors, b.safetensors"
    ]
    # the newer COMBO spec form, and an empty model folder
    info["CheckpointLoaderSimple"] = {
        "input": {"required": {"ckpt_name": ["COMBO", {"options": []}]}}
    }
    assert default.preflight(info) == [
        "Model 'pod-demo-xl.safetensors' for node 4 input ckpt_name is not on the server; "
        "it has: none"
    ]
    info["CheckpointLoaderSimple"] = {
        "input": {"required": {"ckpt_name": [["pod-demo-xl.safetensors"], {}]}}
    }
    assert default.preflight(info) == []
