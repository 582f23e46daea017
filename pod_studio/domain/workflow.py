"""Domain layer: the ComfyUI workflow graph model (API format) and its mapping to a job.

A ``WorkflowTemplate`` wraps an API-format workflow (``{node_id: {"class_type", "inputs"}}``),
finds the inputs POD Studio fills in (positive/negative prompt, seed, size, batch, checkpoint)
and the output nodes, builds the graph for one ``JobSpec`` and checks it against a server's
``/object_info``. Pure: no I/O; loading the JSON text is the caller's business.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard, cast

from pydantic import BaseModel, ConfigDict

from pod_studio.domain.errors import WorkflowError
from pod_studio.domain.models import JobSpec

EXPORT_API_HINT = "In ComfyUI enable Settings → Dev mode, then use Workflow → Export (API)."

MAPPABLE_FIELDS = ("positive", "negative", "seed", "width", "height", "batch", "checkpoint")

# Inputs that carry prompt text, in order of preference; the companion inputs of a node get
# the same text (CLIPTextEncodeSDXL text_g + text_l, CLIPTextEncodeFlux t5xxl + clip_l).
_TEXT_INPUTS = ("text", "text_g", "t5xxl", "prompt", "clip_l")
_TEXT_COMPANIONS: dict[str, tuple[str, ...]] = {"text_g": ("text_l",), "t5xxl": ("clip_l",)}
_SEED_INPUTS = ("seed", "noise_seed")
_CHECKPOINT_INPUTS = ("ckpt_name", "unet_name")
_OUTPUT_CLASSES = frozenset(
    {
        "SaveImage",
        "PreviewImage",
        "SaveImageWebsocket",
        "SaveAnimatedWEBP",
        "SaveAnimatedPNG",
        "SaveWEBM",
        "SaveVideo",
        "Image Save",
    }
)
_MODEL_INPUT_HINTS = (
    "ckpt_name",
    "unet_name",
    "vae_name",
    "lora_name",
    "clip_name",
    "control_net_name",
    "model_name",
    "style_model_name",
    "ipadapter_file",
)
_MAX_CHOICES_LISTED = 12


class InputRef(BaseModel):
    """One input of one node: ``"NODE.INPUT"`` in text form."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    node_id: str
    input_name: str

    @classmethod
    def parse(cls, text: str) -> InputRef:
        node_id, sep, input_name = text.strip().rpartition(".")
        if not sep or not node_id or not input_name:
            raise WorkflowError(
                f"'{text}' is not a node input reference; write it as NODE_ID.INPUT_NAME, "
                "e.g. 6.text",
                service="workflow",
            )
        return cls(node_id=node_id, input_name=input_name)

    def __str__(self) -> str:
        return f"{self.node_id}.{self.input_name}"


class WorkflowMapping(BaseModel):
    """Where a job's values go in the graph (``None`` = the workflow has no such input)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    positive: InputRef | None = None
    negative: InputRef | None = None
    seed: InputRef | None = None
    width: InputRef | None = None
    height: InputRef | None = None
    batch: InputRef | None = None
    checkpoint: InputRef | None = None
    output_nodes: list[str] = []


Graph = dict[str, dict[str, Any]]


def _is_link(value: Any) -> TypeGuard[list[Any]]:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_sort_key(node_id: str) -> tuple[int, int, str]:
    head = node_id.split(":", 1)[0]
    return (0, int(head), node_id) if head.isdigit() else (1, 0, node_id)


def _inputs(graph: Graph, node_id: str) -> dict[str, Any]:
    inputs = graph.get(node_id, {}).get("inputs", {})
    return inputs if isinstance(inputs, dict) else {}


def _title(graph: Graph, node_id: str) -> str:
    meta = graph.get(node_id, {}).get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get("title"), str):
        return str(meta["title"])
    return ""


def validate_graph(data: Any) -> Graph:
    """Check that ``data`` is an API-format workflow; return it as a graph (not copied)."""
    if not isinstance(data, dict):
        raise WorkflowError(
            f"the workflow must be a JSON object of nodes, not {type(data).__name__}. "
            + EXPORT_API_HINT,
            service="workflow",
        )
    if isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowError(
            "this is a ComfyUI UI-format workflow (as saved by Workflow → Save); POD Studio "
            "needs the API format. " + EXPORT_API_HINT,
            service="workflow",
        )
    # A POST /prompt body or a history entry: {"prompt": {...nodes...}, ...}
    if "prompt" in data and isinstance(data["prompt"], dict) and "class_type" not in data:
        inner = data["prompt"]
        if inner and all(isinstance(v, dict) and "class_type" in v for v in inner.values()):
            data = inner
    if not data:
        raise WorkflowError("the workflow is empty: it has no nodes", service="workflow")
    problems: list[str] = []
    for node_id, node in data.items():
        if not isinstance(node, dict):
            problems.append(f"node {node_id!r} is not an object")
            continue
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            problems.append(f"node {node_id!r} has no class_type")
            continue
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            problems.append(f"node {node_id!r} ({class_type}) has inputs that are not an object")
    if not problems:
        problems = _link_problems(data)
        if problems:
            raise WorkflowError(
                "the workflow's links are broken: " + "; ".join(problems[:5]),
                details=problems if len(problems) > 1 else [],
                service="workflow",
            )
    if problems:
        raise WorkflowError(
            "not an API-format workflow: "
            + "; ".join(problems[:5])
            + ("; …" if len(problems) > 5 else "")
            + ". "
            + EXPORT_API_HINT,
            details=problems,
            service="workflow",
        )
    return cast(Graph, data)


def _link_problems(graph: Mapping[str, Any]) -> list[str]:
    """Links to nodes that are not in the graph, and cycles (ComfyUI cannot order a graph that
    loops back on itself), each named by its nodes."""
    problems: list[str] = []
    edges: dict[str, list[str]] = {}
    for node_id in sorted(graph, key=_node_sort_key):
        inputs = graph[node_id].get("inputs", {})
        for name, value in inputs.items():
            if not _is_link(value):
                continue
            source = str(value[0])
            if source not in graph:
                problems.append(
                    f"node {node_id} input {name} is linked to node {source}, which is not in "
                    "the workflow"
                )
            else:
                edges.setdefault(node_id, []).append(source)
    # Depth-first search with colours; iterative, so a long chain cannot hit the recursion limit.
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph, key=_node_sort_key):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            targets = edges.get(node, [])
            if index == len(targets):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, index + 1)
            nxt = targets[index]
            if state.get(nxt) == 1:
                loop = [*path[path.index(nxt) :], nxt]
                problems.append(
                    "the workflow has a cycle: "
                    + " → ".join(f"node {n} ({graph[n].get('class_type')})" for n in loop)
                )
                return problems
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, 0))
    return problems


class _Detector:
    """Finds the mappable inputs of a graph by following its links."""

    def __init__(self, graph: Graph, output_classes: frozenset[str]) -> None:
        self.graph = graph
        self.output_classes = output_classes
        self.ids = sorted(graph, key=_node_sort_key)

    def class_of(self, node_id: str) -> str:
        return str(self.graph.get(node_id, {}).get("class_type", ""))

    def text_input(self, node_id: str) -> str | None:
        inputs = _inputs(self.graph, node_id)
        for name in _TEXT_INPUTS:
            if isinstance(inputs.get(name), str):
                return name
        return None

    def literal_ref(self, node_id: str, name: str, want: type, depth: int = 0) -> InputRef | None:
        """The literal behind ``node_id.name``, following a link to a primitive node."""
        value = _inputs(self.graph, node_id).get(name)
        if _is_link(value) and depth < 3:
            src = str(value[0])
            src_inputs = _inputs(self.graph, src)
            for cand in (name, "value", "seed", "noise_seed", "int", "text", "string"):
                if cand in src_inputs:
                    found = self.literal_ref(src, cand, want, depth + 1)
                    if found is not None:
                        return found
            return None
        if want is int and _is_int(value):
            return InputRef(node_id=node_id, input_name=name)
        if want is str and isinstance(value, str):
            return InputRef(node_id=node_id, input_name=name)
        return None

    def samplers(self) -> list[str]:
        found = []
        for nid in self.ids:
            inputs = _inputs(self.graph, nid)
            if _is_link(inputs.get("positive")) or _is_link(inputs.get("negative")):
                found.append(nid)
        return found

    def upstream(self, start: str) -> list[str]:
        """Every node ``start`` depends on, nearest first (breadth first)."""
        seen = {start}
        order: list[str] = []
        todo = deque([start])
        while todo:
            nid = todo.popleft()
            for value in _inputs(self.graph, nid).values():
                if _is_link(value):
                    src = str(value[0])
                    if src in self.graph and src not in seen:
                        seen.add(src)
                        order.append(src)
                        todo.append(src)
        return order

    def find_encoder(self, node_id: str, polarity: str) -> InputRef | None:
        """Follow conditioning links up from ``node_id`` to the first text encoder."""
        seen: set[str] = set()
        todo = deque([node_id])
        while todo:
            nid = todo.popleft()
            if nid in seen or nid not in self.graph:
                continue
            seen.add(nid)
            name = self.text_input(nid)
            if name is not None:
                return InputRef(node_id=nid, input_name=name)
            inputs = _inputs(self.graph, nid)
            for text_name in _TEXT_INPUTS:  # text wired from a primitive/string node
                if _is_link(inputs.get(text_name)):
                    found = self.literal_ref(nid, text_name, str)
                    if found is not None:
                        return found
            names = [polarity] if _is_link(inputs.get(polarity)) else []
            names += sorted(n for n in inputs if "conditioning" in n or n == "cond")
            for n in names:
                value = inputs.get(n)
                if _is_link(value):
                    todo.append(str(value[0]))
        return None

    def conditioning_source(self, sampler: str, polarity: str) -> InputRef | None:
        value = _inputs(self.graph, sampler).get(polarity)
        if not _is_link(value):
            return None
        return self.find_encoder(str(value[0]), polarity)

    def detect(self) -> WorkflowMapping:
        samplers = self.samplers()
        main: str | None = None
        positive = negative = None
        for nid in samplers:
            pos = self.conditioning_source(nid, "positive")
            if pos is not None:
                main = nid
                positive = pos
                negative = self.conditioning_source(nid, "negative")
                break
        if positive is None:
            positive, main = self._fallback_positive()
        if negative is not None and positive is not None and negative == positive:
            negative = None
        upstream = self.upstream(main) if main else []
        seed = self._seed(main, upstream)
        width, height, batch = self._latent(main, upstream)
        checkpoint = self._checkpoint(upstream)
        outputs = [nid for nid in self.ids if self.class_of(nid) in self.output_classes]
        return WorkflowMapping(
            positive=positive,
            negative=negative,
            seed=seed,
            width=width,
            height=height,
            batch=batch,
            checkpoint=checkpoint,
            output_nodes=outputs,
        )

    def _fallback_positive(self) -> tuple[InputRef | None, str | None]:
        # Guiders without a negative (Flux BasicGuider "conditioning").
        for nid in self.ids:
            value = _inputs(self.graph, nid).get("conditioning")
            if _is_link(value) and "guider" in self.class_of(nid).lower():
                found = self.find_encoder(str(value[0]), "positive")
                if found is not None:
                    consumers = [n for n in self.ids if self._links_to(n, nid)]
                    return found, consumers[0] if consumers else nid
        encoders = [
            nid
            for nid in self.ids
            if self.text_input(nid) is not None
            and "negative" not in _title(self.graph, nid).lower()
        ]
        if len(encoders) == 1:
            name = self.text_input(encoders[0])
            assert name is not None
            return InputRef(node_id=encoders[0], input_name=name), None
        return None, None

    def _links_to(self, node_id: str, target: str) -> bool:
        return any(
            _is_link(v) and str(v[0]) == target for v in _inputs(self.graph, node_id).values()
        )

    def _seed(self, main: str | None, upstream: list[str]) -> InputRef | None:
        order: list[str] = ([main] if main else []) + upstream
        order += [nid for nid in self.ids if nid not in order]
        candidates: list[InputRef] = []
        for nid in order:
            for name in _SEED_INPUTS:
                if name in _inputs(self.graph, nid):
                    ref = self.literal_ref(nid, name, int)
                    if ref is not None and ref not in candidates:
                        candidates.append(ref)
        for ref in candidates:  # a sampler that adds noise beats one that does not
            if _inputs(self.graph, ref.node_id).get("add_noise") != "disable":
                return ref
        return candidates[0] if candidates else None

    def _latent(
        self, main: str | None, upstream: list[str]
    ) -> tuple[InputRef | None, InputRef | None, InputRef | None]:
        order: list[str] = []
        if main:
            value = _inputs(self.graph, main).get("latent_image")
            if _is_link(value):
                src = str(value[0])
                order = [src, *self.upstream(src)]
        order += [nid for nid in upstream if nid not in order]
        order += [nid for nid in self.ids if "latent" in self.class_of(nid).lower()]
        for nid in order:
            width = self.literal_ref(nid, "width", int)
            height = self.literal_ref(nid, "height", int)
            if width is not None and height is not None:
                batch = self.literal_ref(nid, "batch_size", int)
                return width, height, batch
        return None, None, None

    def _checkpoint(self, upstream: list[str]) -> InputRef | None:
        order = upstream + [nid for nid in self.ids if nid not in upstream]
        for name in _CHECKPOINT_INPUTS:
            for nid in order:
                ref = self.literal_ref(nid, name, str) if name in _inputs(self.graph, nid) else None
                if ref is not None:
                    return ref
        return None


def output_classes_from(object_info: Mapping[str, Any] | None) -> frozenset[str]:
    """Known output node classes plus every class the server flags ``output_node``."""
    classes = set(_OUTPUT_CLASSES)
    for name, info in (object_info or {}).items():
        if isinstance(info, dict) and info.get("output_node") is True:
            classes.add(str(name))
    return frozenset(classes)


def _combo_choices(spec: Any) -> list[Any] | None:
    """The allowed values of an /object_info input spec, if it is a combo."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return list(spec[0])
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        if isinstance(options, list):
            return list(options)
    return None


def _input_spec(info: Mapping[str, Any], name: str) -> Any:
    groups = info.get("input")
    if not isinstance(groups, dict):
        return None
    for group in ("required", "optional"):
        section = groups.get(group)
        if isinstance(section, dict) and name in section:
            return section[name]
    return None


def _list_choices(choices: Iterable[Any]) -> str:
    items = [str(c) for c in choices]
    if not items:
        return "none"
    shown = ", ".join(items[:_MAX_CHOICES_LISTED])
    return shown + (f", … ({len(items)} in all)" if len(items) > _MAX_CHOICES_LISTED else "")


def preflight_graph(
    graph: Mapping[str, Any], object_info: Mapping[str, Any], *, values: bool = True
) -> list[str]:
    """Problems that would make the server reject ``graph``: missing classes, and (with
    ``values``) models and choices the server does not list."""
    problems: list[str] = []
    outputs = output_classes_from(object_info)
    if not any(
        isinstance(node, dict) and node.get("class_type") in outputs for node in graph.values()
    ):
        problems.append(
            "The workflow has no output node (such as SaveImage): ComfyUI would run nothing "
            'and refuse it with "Prompt has no outputs"'
        )
    for node_id in sorted(graph, key=_node_sort_key):
        node = graph[node_id]
        if not isinstance(node, dict):
            continue
        class_type = str(node.get("class_type", ""))
        info = object_info.get(class_type)
        if not isinstance(info, dict) or not info:
            problems.append(
                f"Node class '{class_type}' (node {node_id}) is not installed on the server"
            )
            continue
        inputs = node.get("inputs", {})
        if not values or not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if _is_link(value) or not isinstance(value, str):
                continue
            spec = _input_spec(info, name)
            choices = _combo_choices(spec)
            if choices is None:
                continue
            if (
                isinstance(spec, list)
                and len(spec) > 1
                and isinstance(spec[1], dict)
                and spec[1].get("image_upload")
            ):
                continue  # uploads in subfolders are valid but not listed (ComfyUI)
            if value in choices:
                continue
            if any(hint in name for hint in _MODEL_INPUT_HINTS):
                problems.append(
                    f"Model '{value}' for node {node_id} input {name} is not on the server; "
                    f"it has: {_list_choices(choices)}"
                )
            else:
                problems.append(
                    f"Node {node_id} ({class_type}) input {name}: '{value}' is not one of: "
                    f"{_list_choices(choices)}"
                )
    return problems


class WorkflowTemplate:
    """An API-format workflow, the detected mapping of a job onto it, and extra values."""

    def __init__(
        self,
        graph: Graph,
        *,
        name: str = "",
        mapping: WorkflowMapping | None = None,
        set_values: Mapping[str, Any] | None = None,
        object_info: Mapping[str, Any] | None = None,
    ) -> None:
        self._graph: Graph = copy.deepcopy(validate_graph(graph))
        self.name = name
        self.mapping = mapping or _Detector(self._graph, output_classes_from(object_info)).detect()
        self._set_values: dict[str, Any] = {}
        for key, value in (set_values or {}).items():
            ref = self._check_ref(key)
            self._set_values[str(ref)] = copy.deepcopy(value)

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_json_text(
        cls, text: str, *, name: str = "", object_info: Mapping[str, Any] | None = None
    ) -> WorkflowTemplate:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowError(
                f"the workflow{' ' + repr(name) if name else ''} is not valid JSON: "
                f"{exc.msg} at line {exc.lineno}, column {exc.colno}",
                service="workflow",
            ) from exc
        except (TypeError, ValueError) as exc:
            raise WorkflowError(
                f"the workflow is not valid JSON: {exc}", service="workflow"
            ) from exc
        return cls.from_graph(data, name=name, object_info=object_info)

    @classmethod
    def from_graph(
        cls, graph: Any, *, name: str = "", object_info: Mapping[str, Any] | None = None
    ) -> WorkflowTemplate:
        return cls(validate_graph(graph), name=name, object_info=object_info)

    # --- inspection -----------------------------------------------------------------------

    @property
    def graph(self) -> Graph:
        """A deep copy of the workflow as loaded (no job values applied)."""
        return copy.deepcopy(self._graph)

    @property
    def set_values(self) -> dict[str, Any]:
        return copy.deepcopy(self._set_values)

    def node_ids(self) -> list[str]:
        return sorted(self._graph, key=_node_sort_key)

    def node_class(self, node_id: str) -> str:
        return str(self._graph.get(node_id, {}).get("class_type", ""))

    def to_json_text(self) -> str:
        return json.dumps(self._graph, indent=2, ensure_ascii=False)

    # --- customisation (each returns a new template) ---------------------------------------

    def with_override(self, field: str, ref: str | InputRef | None) -> WorkflowTemplate:
        """Map ``field`` (positive, negative, seed, width, height, batch, checkpoint) to a
        node input given as ``"NODE.INPUT"`` (``None`` unmaps it)."""
        if field not in MAPPABLE_FIELDS:
            raise WorkflowError(
                f"unknown field '{field}'; choose one of: {', '.join(MAPPABLE_FIELDS)}",
                service="workflow",
            )
        parsed = None if ref is None else self._check_ref(ref)
        mapping = self.mapping.model_copy(update={field: parsed})
        return WorkflowTemplate(
            self._graph, name=self.name, mapping=mapping, set_values=self._set_values
        )

    def with_values(self, values: Mapping[str, Any]) -> WorkflowTemplate:
        """Add fixed values ``{"NODE.INPUT": value}``, applied last by ``build``."""
        merged = {**self._set_values, **dict(values)}
        return WorkflowTemplate(
            self._graph, name=self.name, mapping=self.mapping, set_values=merged
        )

    def _check_ref(self, ref: str | InputRef) -> InputRef:
        parsed = ref if isinstance(ref, InputRef) else InputRef.parse(ref)
        if parsed.node_id not in self._graph:
            raise WorkflowError(
                f"node {parsed.node_id} does not exist in the workflow (nodes: "
                f"{', '.join(self.node_ids()[:30])})",
                service="workflow",
            )
        return parsed

    # --- building -------------------------------------------------------------------------

    def build(self, job: JobSpec, *, filename_prefix: str = "pod_studio/img") -> Graph:
        """The graph to POST for ``job``: a deep copy with the job's values applied."""
        mapping = self.mapping
        if mapping.positive is None:
            raise WorkflowError(
                f"the workflow{' ' + repr(self.name) if self.name else ''} has no input POD "
                "Studio can put the prompt into (no text encoder wired to a sampler); map "
                "one with an override such as positive = 6.text",
                service="workflow",
            )
        graph = copy.deepcopy(self._graph)

        def put(ref: InputRef, value: Any) -> None:
            node = graph.get(ref.node_id)
            if node is None:
                raise WorkflowError(f"node {ref.node_id} does not exist", service="workflow")
            node.setdefault("inputs", {})[ref.input_name] = copy.deepcopy(value)

        def put_text(ref: InputRef, text: str) -> None:
            put(ref, text)
            inputs = graph[ref.node_id]["inputs"]
            for companion in _TEXT_COMPANIONS.get(ref.input_name, ()):
                if isinstance(inputs.get(companion), str):
                    inputs[companion] = text

        put_text(mapping.positive, job.prompt)
        if mapping.negative is not None and job.negative:
            put_text(mapping.negative, job.negative)
        if mapping.seed is not None:
            put(mapping.seed, job.seed)
        if mapping.width is not None and job.width is not None:
            put(mapping.width, job.width)
        if mapping.height is not None and job.height is not None:
            put(mapping.height, job.height)
        if mapping.checkpoint is not None and job.checkpoint:
            put(mapping.checkpoint, job.checkpoint)
        for node_id in mapping.output_nodes:
            inputs = graph.get(node_id, {}).get("inputs")
            if isinstance(inputs, dict) and "filename_prefix" in inputs:
                inputs["filename_prefix"] = filename_prefix
        for key, value in self._set_values.items():
            put(InputRef.parse(key), value)
        for key, value in job.overrides.items():
            put(self._check_ref(key), value)
        return graph

    def preflight(self, object_info: Mapping[str, Any], *, values: bool = True) -> list[str]:
        """Missing node classes (and, with ``values``, the workflow's own model files and
        choices) on a server (empty list = OK). A job's inputs can replace those values:
        check ``preflight_graph(template.build(spec), info)`` for what is really sent."""
        return preflight_graph(self._graph, object_info, values=values)

    def __repr__(self) -> str:
        return f"WorkflowTemplate(name={self.name!r}, nodes={len(self._graph)})"
