"""Bad input in the domain: every entry refuses it with one sentence that names the problem,
and the error's type carries its exit class (bad input 2, unreachable 3, work failed 1)."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pod_studio.domain import errors
from pod_studio.domain.errors import ExitClass, ValidationError, WorkflowError
from pod_studio.domain.models import GenerationRequest
from pod_studio.domain.pricing import quantize, validate_price
from pod_studio.domain.settings import AppSettings, PrintifySettings
from pod_studio.domain.urls import check_server_url, parse_http_url
from pod_studio.domain.workflow import WorkflowTemplate, preflight_graph


@pytest.mark.parametrize(
    "url,words",
    [
        ("http://[::1:8188", "IPv6 address goes in brackets"),
        ("http://::1]:8188", "IPv6 address goes in brackets"),
        ("http://127.0.0.1:8188\r\nX-Injected: 1", "control character"),
        ("http://127.0.0.1:81\x0088", "control character"),
        ("http://comfy server.local:8188", "space"),
        ("http://comfy\tserver:8188", "control character"),
        ("ftp://127.0.0.1:8188", "not an http(s) URL"),
        ("127.0.0.1:8188", "not an http(s) URL"),
        ("http://", "not an http(s) URL"),
        ("http://host:99999", "port that is not a number from 1 to 65535"),
        ("http://host:-1", "port that is not a number from 1 to 65535"),
        ("http://host:eighty", "port that is not a number from 1 to 65535"),
        ("http://host:0", "port 0"),
        ("   ", "empty"),
        ("http://admin:hunter2@host:8188", "user name or password"),
    ],
)
def test_bad_urls_are_refused_with_one_sentence(url: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_server_url(url)
    assert words in info.value.user_message
    assert "hunter2" not in info.value.user_message + str(info.value)
    assert "\r" not in info.value.user_message and "\n" not in info.value.user_message
    assert info.value.exit_class is ExitClass.BAD_INPUT


@pytest.mark.parametrize(
    "url,normalised",
    [
        ("http://127.0.0.1:8188/", "http://127.0.0.1:8188"),
        (" http://[::1]:8188 ", "http://[::1]:8188"),
        ("https://api.printify.com", "https://api.printify.com"),
        ("http://127.0.0.1:8188\n", "http://127.0.0.1:8188"),  # a pasted line's end
    ],
)
def test_good_urls_are_normalised(url: str, normalised: str) -> None:
    assert check_server_url(url) == normalised


def test_settings_and_every_platform_address_use_the_one_parser() -> None:
    for build in (
        lambda: AppSettings(comfyui_servers=["http://[::1:8188"]),
        lambda: PrintifySettings(base_url="http://[::1:8188"),
    ):
        with pytest.raises(pydantic.ValidationError) as info:
            build()
        assert "IPv6 address goes in brackets" in str(info.value)


@given(st.text(max_size=40))
def test_the_parser_raises_only_validation_errors(text: str) -> None:
    try:
        parse_http_url(text)
    except ValidationError as exc:
        assert exc.user_message


def _template(graph: str) -> WorkflowTemplate:
    return WorkflowTemplate.from_json_text(graph, name="bad.json")


def test_a_cycle_is_named_by_its_nodes() -> None:
    graph = (
        '{"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},'
        ' "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0]}},'
        ' "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}'
    )
    with pytest.raises(WorkflowError) as info:
        _template(graph)
    text = info.value.user_message
    assert "cycle" in text
    assert "node 1 (ImageInvert) → node 2 (ImageBlur) → node 1 (ImageInvert)" in text
    assert info.value.exit_class is ExitClass.BAD_INPUT


def test_a_long_chain_is_no_cycle_and_costs_no_recursion() -> None:
    nodes = {
        str(i): {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
        for i in range(1, 5000)
    }
    nodes["0"] = {"class_type": "EmptyImage", "inputs": {}}
    import json

    assert len(_template(json.dumps(nodes)).node_ids()) == 5000


def test_a_link_to_a_missing_node_is_named() -> None:
    graph = (
        '{"2": {"class_type": "ImageInvert", "inputs": {"image": ["9", 0]}},'
        ' "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}'
    )
    with pytest.raises(WorkflowError) as info:
        _template(graph)
    assert "node 2 input image is linked to node 9, which is not in the workflow" in (
        info.value.user_message
    )


def test_a_graph_without_an_output_node_is_found_before_it_is_sent() -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    info = {"EmptyImage": {"input": {}, "output_node": False}}
    problems = preflight_graph(graph, info)
    assert any("no output node" in p for p in problems)
    graph["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}
    info["SaveImage"] = {"input": {}, "output_node": True}
    assert not any("no output node" in p for p in preflight_graph(graph, info))


@pytest.mark.parametrize("value", ["1e30", "-1e30", Decimal("1E+40"), 10**40])
def test_amounts_too_large_to_round_are_refused_like_negative_ones(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_price(value)  # type: ignore[arg-type]
    assert "too large" in info.value.user_message
    assert quantize("999999999999.99") == Decimal("999999999999.99")


@pytest.mark.parametrize("prompt", ["\x00\x00", "a fox\x00", "owl\x1b[31m", "heron\x7f"])
def test_prompts_with_control_characters_are_refused(prompt: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        GenerationRequest(prompts=["fine", prompt])
    assert "prompt line(s) [2] contain control characters" in str(info.value)


def test_prompts_keep_tabs_and_unicode() -> None:
    assert GenerationRequest(prompts=["ünïcode ☕\tsunset"]).prompts == ["ünïcode ☕\tsunset"]


@pytest.mark.parametrize(
    "error,exit_class",
    [
        (errors.ValidationError("x"), ExitClass.BAD_INPUT),
        (errors.WorkflowError("x"), ExitClass.BAD_INPUT),
        (errors.AuthenticationError("x"), ExitClass.BAD_INPUT),
        (errors.ServiceError("x"), ExitClass.UNREACHABLE),
        (errors.UpstreamDataError("x"), ExitClass.UNREACHABLE),
        (errors.TimeoutError("x"), ExitClass.UNREACHABLE),
        (errors.RateLimitError("x"), ExitClass.UNREACHABLE),
        (errors.CircuitOpenError("comfyui", 5.0), ExitClass.UNREACHABLE),
        (errors.ServiceUnavailableError("x"), ExitClass.UNREACHABLE),
        (errors.APIError("x"), ExitClass.WORK_FAILED),
        (errors.PromptLostError("x"), ExitClass.WORK_FAILED),
        (errors.JobInterruptedError("x"), ExitClass.WORK_FAILED),
        (RuntimeError("not ours"), ExitClass.WORK_FAILED),
    ],
)
def test_the_exit_class_comes_from_the_type(error: BaseException, exit_class: ExitClass) -> None:
    assert errors.exit_class(error) is exit_class
