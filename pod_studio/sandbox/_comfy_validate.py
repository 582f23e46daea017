"""Sandbox layer: ComfyUI 0.3.64's prompt validation, reproduced with its error shapes.

Mirrors ``execution.validate_prompt`` / ``validate_inputs``: the same error types, messages,
``details``/``extra_info`` and the same quirks (exceptions are attributed to the output node,
type conversion rewrites the prompt's values in place, combo lists longer than 20 are summarised).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pod_studio.sandbox._comfy_nodes import NODES, return_types

ValidationResult = tuple[bool, list[dict[str, Any]], str]

_VALIDATE_TB = [
    '  File "/opt/ComfyUI/execution.py", line 1010, in validate_prompt\n'
    "    m = await validate_inputs(prompt_id, prompt, o, validated)\n",
    '  File "/opt/ComfyUI/execution.py", line 788, in validate_inputs\n'
    "    o_class_type = prompt[o_id]['class_type']\n",
]


class PromptTypeError(Exception):
    """The prompt is not a JSON object: the real server answers with a bare 500."""


def _error(kind: str, message: str, details: str, **extra_info: Any) -> dict[str, Any]:
    """One validation error, in the server's shape."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _input_info(
    info: dict[str, Any], name: str
) -> tuple[Any, str, dict[str, Any]] | tuple[None, None, None]:
    for category in ("required", "optional"):
        section = info.get("input", {}).get(category, {})
        if name in section:
            spec = section[name]
            extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return spec[0], category, extra
    return None, None, None


def _types_match(received: Any, wanted: Any) -> bool:
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    if "*" in got or "*" in want:
        return True
    return bool(got & want) and got <= want


class Validator:
    """One validation run over one prompt (``validated`` memoises per node, like upstream)."""

    def __init__(
        self,
        prompt: dict[str, Any],
        info_for: Callable[[str], dict[str, Any]],
        image_exists: Callable[[str], bool],
    ) -> None:
        self.prompt = prompt
        self.info_for = info_for
        self.image_exists = image_exists
        self.validated: dict[str, ValidationResult] = {}

    def validate_inputs(self, unique_id: str) -> ValidationResult:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs = node.setdefault("inputs", {})
        class_type = node["class_type"]
        info = self.info_for(class_type)
        order = info.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", []))
        errors: list[dict[str, Any]] = []
        valid = True
        custom_inputs = {"image"} if class_type == "LoadImage" else set()

        for x in names:
            input_type, category, extra = _input_info(info, x)
            if input_type is None or extra is None:
                continue
            if x not in inputs:
                if category == "required":
                    errors.append(
                        _error(
                            "required_input_missing",
                            "Required input is missing",
                            f"{x}",
                            input_name=x,
                        )
                    )
                continue
            val = inputs[x]
            config = [input_type, extra]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append(
                        _error(
                            "bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            f"{x}",
                            input_name=x,
                            input_config=config,
                            received_value=val,
                        )
                    )
                    continue
                o_id = val[0]
                o_class_type = self.prompt[o_id]["class_type"]
                received_type = return_types(o_class_type)[val[1]]
                if not _types_match(received_type, input_type):
                    errors.append(
                        _error(
                            "return_type_mismatch",
                            "Return type mismatch between linked nodes",
                            f"{x}, received_type({received_type}) mismatch "
                            f"input_type({input_type})",
                            input_name=x,
                            input_config=config,
                            received_type=received_type,
                            linked_node=val,
                        )
                    )
                    continue
                try:
                    result = self.validate_inputs(o_id)
                    if result[0] is False:
                        valid = False
                        continue
                except Exception as ex:  # noqa: BLE001 - mirrors the server's catch-all
                    valid = False
                    self.validated[o_id] = (
                        False,
                        [
                            _error(
                                "exception_during_inner_validation",
                                "Exception when validating inner node",
                                str(ex),
                                input_name=x,
                                input_config=config,
                                exception_message=str(ex),
                                exception_type=_type_name(ex),
                                traceback=list(_VALIDATE_TB),
                                linked_node=val,
                            )
                        ],
                        o_id,
                    )
                    continue
            else:
                try:
                    if isinstance(val, dict) and "__value__" in val:
                        val = val["__value__"]
                        inputs[x] = val
                    if input_type == "INT":
                        val = int(val)
                        inputs[x] = val
                    if input_type == "FLOAT":
                        val = float(val)
                        inputs[x] = val
                    if input_type == "STRING":
                        val = str(val)
                        inputs[x] = val
                    if input_type == "BOOLEAN":
                        val = bool(val)
                        inputs[x] = val
                except Exception as ex:  # noqa: BLE001 - mirrors the server's catch-all
                    errors.append(
                        _error(
                            "invalid_input_type",
                            f"Failed to convert an input value to a {input_type} value",
                            f"{x}, {val}, {ex}",
                            input_name=x,
                            input_config=config,
                            received_value=val,
                            exception_message=str(ex),
                        )
                    )
                    continue
                if x in custom_inputs:
                    continue
                try:
                    if "min" in extra and val < extra["min"]:
                        errors.append(
                            _error(
                                "value_smaller_than_min",
                                f"Value {val} smaller than min of {extra['min']}",
                                f"{x}",
                                input_name=x,
                                input_config=config,
                                received_value=val,
                            )
                        )
                        continue
                    if "max" in extra and val > extra["max"]:
                        errors.append(
                            _error(
                                "value_bigger_than_max",
                                f"Value {val} bigger than max of {extra['max']}",
                                f"{x}",
                                input_name=x,
                                input_config=config,
                                received_value=val,
                            )
                        )
                        continue
                except TypeError:
                    pass
                if isinstance(input_type, list):
                    combo = input_type
                    try:
                        in_list = val in combo
                    except TypeError:
                        in_list = False
                    if not in_list:
                        input_config: list[Any] | None = config
                        if len(combo) > 20:
                            list_info = f"(list of length {len(combo)})"
                            input_config = None
                        else:
                            list_info = str(combo)
                        errors.append(
                            _error(
                                "value_not_in_list",
                                "Value not in list",
                                f"{x}: '{val}' not in {list_info}",
                                input_name=x,
                                input_config=input_config,
                                received_value=val,
                            )
                        )
                        continue

        if class_type == "LoadImage" and "image" in inputs and not errors:
            value = inputs["image"]
            if not isinstance(value, list) and not self.image_exists(str(value)):
                errors.append(
                    _error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"image - Invalid image file: {value}",
                        input_name="image",
                    )
                )

        outcome: ValidationResult = (
            (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
        )
        self.validated[unique_id] = outcome
        return outcome


def validate_prompt(
    prompt: Any,
    info_for: Callable[[str], dict[str, Any]],
    image_exists: Callable[[str], bool],
) -> tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]:
    """``(valid, error, good_outputs, node_errors)`` exactly as the server computes them."""
    if isinstance(prompt, list) and not prompt:
        prompt = {}
    if not isinstance(prompt, dict):
        raise PromptTypeError(type(prompt).__name__)
    outputs: list[str] = []
    for x in prompt:
        node = prompt[x]
        if not isinstance(node, dict):
            raise PromptTypeError(type(node).__name__)
        if "class_type" not in node:
            error = _error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{x}'",
            )
            return False, error, [], {}
        class_type = node["class_type"]
        spec = NODES.get(class_type) if isinstance(class_type, str) else None
        if spec is None:
            error = _error(
                "invalid_prompt",
                f"Cannot execute because node {class_type} does not exist.",
                f"Node ID '#{x}'",
            )
            return False, error, [], {}
        if spec.output_node:
            outputs.append(x)
    if not outputs:
        error = _error("prompt_no_outputs", "Prompt has no outputs", "")
        return False, error, [], {}

    validator = Validator(prompt, info_for, image_exists)
    good_outputs: list[str] = []
    errors: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for o in outputs:
        try:
            valid, reasons, _ = validator.validate_inputs(o)
        except Exception as ex:  # noqa: BLE001 - mirrors the server's catch-all
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    exception_type=_type_name(ex),
                    traceback=list(_VALIDATE_TB),
                )
            ]
            validator.validated[o] = (False, reasons, o)
        if valid is True:
            good_outputs.append(o)
            continue
        errors.append((o, reasons))
        for node_id, result in validator.validated.items():
            if result[0] is not True and result[1]:
                if node_id not in node_errors:
                    node_errors[node_id] = {
                        "errors": result[1],
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    }
                node_errors[node_id]["dependent_outputs"].append(o)

    if not good_outputs:
        lines = [f"{e['message']}: {e['details']}" for _, reasons in errors for e in reasons]
        error = _error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines)
        )
        return False, error, [], node_errors
    return True, None, good_outputs, node_errors
