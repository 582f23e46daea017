"""Domain layer: product templates and the listing texts rendered from a prompt.

A :class:`ProductTemplate` says what to make from an approved design (Printify blueprint and
print provider, enabled colours and sizes, where the design sits, the price rule) and how to
word the listing (title, description and tag templates with ``{prompt}``, ``{short_prompt}``,
``{product}`` and ``{color}`` placeholders). :func:`render_texts` turns a prompt into a title
(<= 140 characters), a description and at most 13 Etsy-safe tags (<= 20 characters each,
lowercase, deduplicated, only letters, digits, spaces, ``-``, ``'``, ``™©®``).

Templates are stored as JSON (``resources/product_templates.json``); :func:`load_templates`
validates that text and reports every problem with its location.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from decimal import Decimal
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.marketplace import Placement
from pod_studio.domain.models import ListingCopy
from pod_studio.domain.pricing import DEFAULT_CURRENCY, validate_currency, validate_price

TEMPLATES_SCHEMA_VERSION = 1
PLACEHOLDERS = frozenset({"prompt", "short_prompt", "product", "color"})
MAX_TITLE_CHARS = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
SHORT_PROMPT_CHARS = 60
# Etsy allows each of these at most once in a title.
TITLE_ONCE_CHARS = "%:&+"
TAG_EXTRA_CHARS = frozenset("-'™©®")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _word_set(
    "a an the of and or with without in on at to for by from into over under is are be as it "
    "its this that these those very so no not per vs via de la le el"
)
# Words that describe image quality for the generator, not the product.
_PROMPT_NOISE = _word_set(
    "masterpiece best quality high highly detailed detail details intricate 4k 8k 16k hd uhd "
    "hdr resolution trending artstation octane render rendered unreal engine sharp focus "
    "photorealistic realistic ultra hyper hyperdetailed professional "
    # what a prompt tells the generator about the print, not what a buyer searches for
    "vector t-shirt tshirt tee shirt design graphic print transparent background white "
    "isolated svg png file"
)
_LORA_RE = re.compile(r"<[^<>]*>")
_WEIGHT_RE = re.compile(r":\s*-?\d+(?:\.\d+)?")
_BRACKETS_RE = re.compile(r"[()\[\]{}]")
_SPACES_RE = re.compile(r"\s+")
_SMALL_WORDS = _word_set("a an and as at but by for in of on or the to with")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrintPlacement(_Frozen):
    """Where the design sits on the placeholder (Printify's normalised coordinates)."""

    position: Literal["front"] = "front"
    scale: float = Field(default=1.0, ge=0.0, le=2.0)
    x: float = Field(default=0.5, ge=0.0, le=1.0)
    y: float = Field(default=0.5, ge=0.0, le=1.0)
    angle: int = Field(default=0, ge=0, le=360)

    @field_validator("angle", mode="before")
    @classmethod
    def _integer_angle(cls, value: Any) -> Any:
        # Printify rejects a fractional angle; refuse it here instead of rounding silently.
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("angle must be a whole number of degrees")
        return value

    @field_validator("scale")
    @classmethod
    def _positive_scale(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("scale must be greater than 0")
        return value

    def for_listing(self) -> Placement:
        """The marketplace port's placement value (position travels separately)."""
        return Placement(x=self.x, y=self.y, scale=self.scale, angle=self.angle)


class PriceRule(_Frozen):
    """Base price plus per-size overrides, in one currency."""

    base: Decimal
    size_overrides: dict[str, Decimal] = Field(default_factory=dict)
    currency: str = DEFAULT_CURRENCY

    @field_validator("base", mode="before")
    @classmethod
    def _base(cls, value: Any) -> Decimal:
        return _price_field(value, "base price")

    @field_validator("size_overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {size: _price_field(v, f"price of size {size}") for size, v in value.items()}

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return validate_currency(value)
        except ValidationError as exc:
            raise ValueError(exc.message) from None


def _price_field(value: Any, what: str) -> Decimal:
    if isinstance(value, float):
        # JSON numbers arrive as float: go through their shortest repr, not the binary value.
        value = repr(value)
    try:
        return validate_price(value, what=what)
    except ValidationError as exc:
        raise ValueError(exc.message) from None


class ProductTemplate(_Frozen):
    """What to make from an approved design, and how to word its listing."""

    schema_version: int = TEMPLATES_SCHEMA_VERSION
    name: str = Field(min_length=1, max_length=80)
    product_type: str = Field(min_length=1, max_length=40)  # "t-shirt", "hoodie", ...
    blueprint_id: int = Field(gt=0)
    print_provider_id: int = Field(gt=0)
    colors: list[str] = Field(min_length=1)
    sizes: list[str] = Field(min_length=1)
    placement: PrintPlacement = Field(default_factory=PrintPlacement)
    price: PriceRule
    title_template: str = "{short_prompt} {product}"
    description_template: str = "{prompt}\n\nPrinted on demand on a {product}."
    tags_template: list[str] = Field(default_factory=lambda: ["{product}"])

    @field_validator("name", "product_type")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("colors", "sizes")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v for v in cleaned):
            raise ValueError("entries must not be blank")
        dupes = sorted({v for v in cleaned if cleaned.count(v) > 1})
        if dupes:
            raise ValueError(f"duplicate entries: {', '.join(dupes)}")
        return cleaned

    @field_validator("title_template", "description_template")
    @classmethod
    def _text_placeholders(cls, value: str) -> str:
        _check_placeholders(value)
        return value

    @field_validator("tags_template")
    @classmethod
    def _tag_placeholders(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_placeholders(value)
        return values

    @model_validator(mode="after")
    def _overrides_are_enabled_sizes(self) -> ProductTemplate:
        unknown = [s for s in self.price.size_overrides if s not in self.sizes]
        if unknown:
            raise ValueError(
                f"price overrides for sizes that are not enabled: {', '.join(unknown)} "
                f"(enabled: {', '.join(self.sizes)})"
            )
        return self

    @property
    def product_label(self) -> str:
        """Display name of the product type: "t-shirt" -> "T-Shirt"."""
        return "-".join(_title_word(p) for p in self.product_type.split("-"))


def _check_placeholders(text: str) -> None:
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"{text!r}: unknown placeholder {{{name}}}; use {allowed}")
        if spec or conversion:
            raise ValueError(f"{text!r}: placeholder {{{name}}} takes no format or conversion")


# --- defaults ---------------------------------------------------------------------------------

_TEE_SIZES = ["S", "M", "L", "XL", "2XL", "3XL"]


def default_templates() -> list[ProductTemplate]:
    """The built-in templates: a classic tee and a pullover hoodie.

    Blueprint 12 is Bella+Canvas 3001, blueprint 77 Gildan 18500; provider 99 is
    "Printify Choice". Check both against the live catalog before relying on them.
    """
    tags = ["{product}", "graphic {product}", "gift idea", "unisex"]
    return [
        ProductTemplate(
            name="Classic T-shirt",
            product_type="t-shirt",
            blueprint_id=12,
            print_provider_id=99,
            colors=["White", "Black", "Navy", "Sport Grey"],
            sizes=list(_TEE_SIZES),
            placement=PrintPlacement(),
            price=PriceRule(
                base=Decimal("19.99"),
                size_overrides={"2XL": Decimal("21.99"), "3XL": Decimal("23.99")},
            ),
            title_template="{short_prompt} {product}",
            description_template=(
                "{prompt}\n\nA soft, lightweight unisex {product} printed on demand "
                "just for you. Colour shown: {color}."
            ),
            tags_template=tags,
        ),
        ProductTemplate(
            name="Pullover Hoodie",
            product_type="hoodie",
            blueprint_id=77,
            print_provider_id=99,
            colors=["Black", "Navy", "Sport Grey", "White"],
            sizes=list(_TEE_SIZES),
            placement=PrintPlacement(scale=0.9, y=0.45),
            price=PriceRule(
                base=Decimal("34.99"),
                size_overrides={"2XL": Decimal("37.99"), "3XL": Decimal("39.99")},
            ),
            title_template="{short_prompt} {product}",
            description_template=(
                "{prompt}\n\nA warm unisex pullover {product} printed on demand "
                "just for you. Colour shown: {color}."
            ),
            tags_template=tags,
        ),
    ]


# --- loading and saving -----------------------------------------------------------------------


class _TemplateFile(_Frozen):
    schema_version: int = TEMPLATES_SCHEMA_VERSION
    templates: list[ProductTemplate] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> _TemplateFile:
        names = [t.name for t in self.templates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate template names: {', '.join(dupes)}")
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def load_templates(json_text: str) -> list[ProductTemplate]:
    """Parse and validate product templates (``{"schema_version": 1, "templates": [...]}``).

    Raises ``ValidationError`` whose ``details`` list every problem as "location: message".
    """
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"product templates are not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            user_message="The product templates file is not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg}).",
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(
            "product templates must be a JSON object with a 'templates' list",
            user_message="The product templates file must be an object with a 'templates' list.",
        )
    version = data.get("schema_version", TEMPLATES_SCHEMA_VERSION)
    if version != TEMPLATES_SCHEMA_VERSION:
        raise ValidationError(
            f"product templates schema_version {version!r} is not supported "
            f"(expected {TEMPLATES_SCHEMA_VERSION})",
        )
    try:
        parsed = _TemplateFile.model_validate(data)
    except pydantic.ValidationError as exc:
        details = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            loc = _location(tuple(err["loc"]))
            name = _template_name_at(data, err["loc"])
            details.append(f"{loc}{f' ({name})' if name else ''}: {msg}")
        raise ValidationError(
            f"product templates are invalid: {details[0]}"
            + (f" (and {len(details) - 1} more)" if len(details) > 1 else ""),
            details=details,
            user_message="Some product templates are invalid:\n" + "\n".join(details),
        ) from None
    return list(parsed.templates)


def _template_name_at(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] == "templates" and isinstance(loc[1], int):
        templates = data.get("templates")
        if isinstance(templates, list) and 0 <= loc[1] < len(templates):
            item = templates[loc[1]]
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                return str(item["name"])
    return ""


def dump_templates(templates: list[ProductTemplate]) -> str:
    """The JSON text :func:`load_templates` reads (prices as decimal strings)."""
    payload = _TemplateFile(templates=templates).model_dump(mode="json")
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


# --- texts -------------------------------------------------------------------------------------


_PHRASE_SPLIT_RE = re.compile(r"[,;.|\n、，。；]")


def _strip_controls(text: str) -> str:
    """Format characters (zero-width joiners, bidi marks) dropped, other controls -> space."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        out.append(" " if cat[0] == "C" else ch)
    return "".join(out)


def _generator_free(prompt: str) -> str:
    text = unicodedata.normalize("NFC", prompt)
    text = _LORA_RE.sub(" ", text)
    text = _WEIGHT_RE.sub("", text)
    text = _BRACKETS_RE.sub("", text)
    return _SPACES_RE.sub(" ", _strip_controls(text)).strip()


def _is_noise(phrase: str) -> bool:
    words = [w for w in clean_tag(phrase).split(" ") if w and w not in _STOPWORDS]
    return all(w in _PROMPT_NOISE or w.isdigit() for w in words)


def prompt_phrases(prompt: str) -> list[str]:
    """The prompt's comma-separated phrases, without generator syntax and quality boilerplate."""
    phrases = (p.strip() for p in _PHRASE_SPLIT_RE.split(_generator_free(prompt)))
    return [p for p in phrases if p and not _is_noise(p)]


def clean_prompt(prompt: str) -> str:
    """The prompt as a buyer may read it: no ``<lora:x:0.8>``, ``(word:1.2)``, brackets or
    "masterpiece, best quality, 8k" phrases (kept when the prompt has nothing else)."""
    return ", ".join(prompt_phrases(prompt)) or _generator_free(prompt).strip(" ,;")


def _title_word(word: str) -> str:
    return word[:1].upper() + word[1:] if word else word


def _title_case(text: str) -> str:
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        lower = word.lower()
        out.append(lower if i and lower in _SMALL_WORDS else _title_word(word))
    return " ".join(out)


def _cut_words(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[: limit + 1] else ""
    return (cut or text[:limit]).rstrip(" ,;:-")


def short_prompt(prompt: str) -> str:
    """The start of the cleaned prompt, title-cased, at most 60 characters."""
    return _title_case(_cut_words(clean_prompt(prompt), SHORT_PROMPT_CHARS))


def _sanitize_title(text: str) -> str:
    text = "".join(
        " " if unicodedata.category(ch) in ("So", "Sk") and ch not in TAG_EXTRA_CHARS else ch
        for ch in _strip_controls(text)
    )
    seen: set[str] = set()
    out = []
    for ch in text:
        if ch in TITLE_ONCE_CHARS:
            if ch in seen:
                continue
            seen.add(ch)
        out.append(ch)
    text = _SPACES_RE.sub(" ", "".join(out)).strip(" ,;")
    return _cut_words(text, MAX_TITLE_CHARS)


def clean_tag(text: str) -> str:
    """``text`` as an Etsy tag: lowercase letters, digits, spaces, ``-'™©®``; no cut."""
    text = unicodedata.normalize("NFC", text).lower()
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "L" or cat == "Nd" or ch in TAG_EXTRA_CHARS:
            chars.append(ch)
        else:
            chars.append(" ")
    return _SPACES_RE.sub(" ", "".join(chars)).strip(" -'")


def _prompt_tag_candidates(prompt: str) -> list[str]:
    phrases = [clean_tag(p) for p in prompt_phrases(prompt)]
    candidates = [p for p in phrases if " " in p and len(p) <= MAX_TAG_CHARS]
    for phrase in phrases:
        for word in phrase.split(" "):
            if len(word) < 2 or word in _STOPWORDS or word in _PROMPT_NOISE:
                continue
            if word.strip("-'").isdigit():
                continue
            candidates.append(word[:MAX_TAG_CHARS].rstrip(" -'"))
    return candidates


def _render(template: str, values: dict[str, str]) -> str:
    return template.format_map(values)


def render_tags(
    template: ProductTemplate,
    prompt: str,
    *,
    color: str | None = None,
    copy: ListingCopy | None = None,
) -> list[str]:
    """At most 13 Etsy-safe tags: the seller's own tags (``copy``), then the template's, then
    (when the seller gave none) words of the prompt."""
    values = _values(template, prompt, color, copy)
    own = [clean_tag(t) for t in copy.tags] if copy is not None else []
    candidates = own + [clean_tag(_render(t, values)) for t in template.tags_template]
    if not own:
        candidates += _prompt_tag_candidates(prompt)
    tags: list[str] = []
    seen: set[str] = set()
    for tag in candidates:
        if len(tag) > MAX_TAG_CHARS:
            tag = _cut_words(tag, MAX_TAG_CHARS).rstrip(" -'")
        key = tag.replace(" ", "")
        if not tag or key in seen:
            continue
        seen.add(key)
        tags.append(tag)
        if len(tags) == MAX_TAGS:
            break
    return tags


def _values(
    template: ProductTemplate, prompt: str, color: str | None, copy: ListingCopy | None = None
) -> dict[str, str]:
    name = copy.name if copy is not None else ""
    description = copy.description.strip() if copy is not None else ""
    return {
        "prompt": description or clean_prompt(prompt),
        "short_prompt": name or short_prompt(prompt),
        "product": template.product_label,
        "color": color if color is not None else template.colors[0],
    }


def render_texts(
    template: ProductTemplate,
    prompt: str,
    *,
    color: str | None = None,
    copy: ListingCopy | None = None,
) -> tuple[str, str, list[str]]:
    """(title <= 140 characters, description, tags) for a design made from ``prompt``, in
    the seller's words where ``copy`` has them.

    ``color`` fills ``{color}``; it defaults to the template's first enabled colour.
    """
    if not prompt.strip() and (copy is None or not copy.name):
        raise ValidationError(
            "cannot write a listing for an empty prompt",
            user_message="The design has no prompt to write the listing from.",
        )
    values = _values(template, prompt, color, copy)
    title = _sanitize_title(_render(template.title_template, values))
    if not title:
        title = _sanitize_title(f"{values['short_prompt']} {values['product']}")
    description = _render(template.description_template, values).strip()
    tags = render_tags(template, prompt, color=color, copy=copy)
    return title, description, tags


def listing_problems(template: ProductTemplate, prompt: str, copy: ListingCopy | None) -> list[str]:
    """What in the seller's words a listing cannot take, said as the seller would fix it
    ([] when the listing can be made as written). Titles over 140 characters and tags over
    20 characters would otherwise be cut; more than 13 tags would be dropped."""
    problems: list[str] = []
    if copy is None:
        return problems
    values = _values(template, prompt, copy=copy, color=None)
    full_title = " ".join(_render(template.title_template, values).split())
    if len(full_title) > MAX_TITLE_CHARS:
        problems.append(
            f"the {template.name} title is {len(full_title)} characters; "
            f"at most {MAX_TITLE_CHARS} fit (shorten the name)"
        )
    own = [clean_tag(t) for t in copy.tags]
    for raw, tag in zip(copy.tags, own, strict=True):
        if not tag:
            problems.append(f"the tag “{raw}” has no letters or digits")
        elif len(tag) > MAX_TAG_CHARS:
            problems.append(f"the tag “{tag}” is {len(tag)} characters; at most {MAX_TAG_CHARS}")
    if len(own) > MAX_TAGS:
        problems.append(f"{len(own)} tags; at most {MAX_TAGS}")
    return problems
