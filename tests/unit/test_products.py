"""Product templates, their JSON file, and listing texts rendered from prompts."""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.marketplace import ListingSpec, VariantPrice
from pod_studio.domain.models import ListingCopy
from pod_studio.domain.products import (
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    ProductTemplate,
    clean_prompt,
    clean_tag,
    default_templates,
    dump_templates,
    listing_problems,
    load_templates,
    render_texts,
)

RESOURCE = Path(__file__).resolve().parents[2] / "resources" / "product_templates.json"
TEE, HOODIE = default_templates()
ETSY_TAG_CHAR = re.compile(r"^[\w\s\-'™©®]+$")


def _template_dict(**changes: Any) -> dict[str, Any]:
    data = TEE.model_dump(mode="json")
    data.update(changes)
    return data


def _file(*templates: dict[str, Any]) -> str:
    return json.dumps({"schema_version": 1, "templates": list(templates)})


def _assert_etsy_tags(tags: list[str]) -> None:
    assert len(tags) <= MAX_TAGS
    assert len({t.replace(" ", "") for t in tags}) == len(tags), tags
    for tag in tags:
        assert tag
        assert len(tag) <= MAX_TAG_CHARS, tag
        assert tag == tag.lower()
        assert tag == tag.strip()
        assert "  " not in tag
        for ch in tag:
            assert unicodedata.category(ch)[0] in "LN" or ch in " -'™©®", (tag, ch)


# --- defaults and the resource file ------------------------------------------------------------


def test_defaults() -> None:
    assert TEE.name == "Classic T-shirt"
    assert TEE.blueprint_id == 12
    assert TEE.price.base == Decimal("19.99")
    assert TEE.price.currency == "USD"
    assert TEE.price.size_overrides["2XL"] > TEE.price.base
    assert TEE.placement.position == "front"
    assert HOODIE.name == "Pullover Hoodie"
    assert HOODIE.blueprint_id == 77
    assert HOODIE.price.base == Decimal("34.99")
    assert TEE.product_label == "T-Shirt"


def test_resource_file_ships_the_defaults() -> None:
    assert load_templates(RESOURCE.read_text(encoding="utf-8")) == default_templates()


def test_prices_are_strings_in_json_and_round_trip() -> None:
    text = dump_templates(default_templates())
    assert '"base": "19.99"' in text
    assert load_templates(text) == default_templates()


def test_json_number_prices_are_read_exactly() -> None:
    data = _template_dict(price={"base": 19.99, "size_overrides": {"2XL": 21.99}})
    (template,) = load_templates(_file(data))
    assert template.price.base == Decimal("19.99")
    assert template.price.size_overrides["2XL"] == Decimal("21.99")


def test_placement_converts_to_listing_placement() -> None:
    placement = HOODIE.placement.for_listing()
    assert (placement.x, placement.y, placement.scale, placement.angle) == (0.5, 0.45, 0.9, 0)


# --- load_templates errors ---------------------------------------------------------------------


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(ValidationError, match=r"not valid JSON: .* line 2 column"):
        load_templates('{"templates": [\n  oops]}')


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(ValidationError, match="JSON object with a 'templates' list"):
        load_templates("[]")


def test_unknown_schema_version() -> None:
    with pytest.raises(ValidationError, match="schema_version 9 is not supported"):
        load_templates(json.dumps({"schema_version": 9, "templates": []}))


@pytest.mark.parametrize(
    ("changes", "location", "message"),
    [
        ({"price": {"base": "-1"}}, "templates[0].price.base", "greater than zero"),
        ({"price": {"base": "20000"}}, "templates[0].price.base", "above the 10000 limit"),
        (
            {"price": {"base": "19.99", "size_overrides": {"9XL": "30"}}},
            "templates[0]",
            "not enabled: 9XL",
        ),
        ({"placement": {"scale": 3}}, "templates[0].placement.scale", "less than or equal to 2"),
        ({"placement": {"x": 1.5}}, "templates[0].placement.x", "less than or equal to 1"),
        ({"placement": {"angle": 12.5}}, "templates[0].placement.angle", "whole number"),
        ({"placement": {"position": "back"}}, "templates[0].placement.position", "front"),
        ({"title_template": "{prompt} {price}"}, "title_template", "unknown placeholder {price}"),
        ({"tags_template": ["{0}"]}, "tags_template", "unknown placeholder {0}"),
        ({"title_template": "{prompt!r}"}, "title_template", "no format or conversion"),
        ({"sizes": ["S", "S"]}, "templates[0].sizes", "duplicate entries: S"),
        ({"colors": []}, "templates[0].colors", "at least 1"),
        ({"blueprint_id": 0}, "templates[0].blueprint_id", "greater than 0"),
        ({"surprise": 1}, "templates[0].surprise", "Extra inputs"),
    ],
)
def test_invalid_templates_report_location_and_reason(
    changes: dict[str, Any], location: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        load_templates(_file(_template_dict(**changes)))
    details = info.value.details
    assert details
    assert any(location in d and message in d for d in details), details
    assert "(Classic T-shirt)" in details[0]  # names the template, not just an index
    assert message in info.value.user_message


def test_every_problem_is_listed() -> None:
    bad = _template_dict(blueprint_id=-1, print_provider_id=-1)
    with pytest.raises(ValidationError, match=r"and 1 more") as info:
        load_templates(_file(bad))
    assert len(info.value.details) == 2


def test_duplicate_template_names() -> None:
    with pytest.raises(ValidationError, match="duplicate template names: Classic T-shirt"):
        load_templates(_file(_template_dict(), _template_dict()))


# --- render_texts ------------------------------------------------------------------------------


def test_render_texts_for_a_typical_prompt() -> None:
    prompt = "retro sunset over mountains, vaporwave, (masterpiece:1.2), best quality, 8k"
    title, description, tags = render_texts(TEE, prompt, color="Black")
    assert title == "Retro Sunset Over Mountains, Vaporwave T-Shirt"
    assert description.startswith("retro sunset over mountains, vaporwave\n")
    assert "Colour shown: Black." in description
    assert "masterpiece" not in description
    assert tags[:4] == ["t-shirt", "graphic t-shirt", "gift idea", "unisex"]
    assert {"retro", "sunset", "mountains", "vaporwave"} <= set(tags)
    assert not {"masterpiece", "quality", "8k"} & set(tags)
    _assert_etsy_tags(tags)


def test_color_defaults_to_first_enabled_colour() -> None:
    _, description, _ = render_texts(HOODIE, "a fox")
    assert "Colour shown: Black." in description


def test_generator_syntax_is_removed() -> None:
    assert clean_prompt("<lora:pixel:0.8> (cute cat:1.3), [[hat]]") == "cute cat, hat"


def test_title_is_cut_at_a_word_boundary_and_keeps_etsy_rules() -> None:
    prompt = "word " * 100 + "% 50% off: cats & dogs & more + extra + stuff"
    template = TEE.model_copy(update={"title_template": "{prompt} {product}"})
    title, _, _ = render_texts(template, prompt)
    assert len(title) <= MAX_TITLE_CHARS
    assert title.endswith("word")
    title2, _, _ = render_texts(template, "50% off: cats & dogs & more: 100% + extra + fun")
    for ch in "%:&+":
        assert title2.count(ch) <= 1, title2


def test_long_unicode_prompts_give_valid_tags() -> None:
    prompts = [
        "東京の夜景と桜の花びらが舞う幻想的な風景、ネオン、サイバーパンク、" * 8,
        "Donaudampfschifffahrtsgesellschaftskapitän mit Übergröße, café crème 🐱‍👤, ™ brand",
        "кот в шляпе, акварель, винтажный стиль, " * 10,
        "a" * 500,
        "🎨🎨🎨, ✨✨, 🚀",
        "$$$ !!! ??? ### @@@, ^^^ ~~~",
    ]
    for prompt in prompts:
        title, description, tags = render_texts(TEE, prompt)
        assert 0 < len(title) <= MAX_TITLE_CHARS
        assert description
        _assert_etsy_tags(tags)


def test_tags_are_lowercase_deduplicated_and_capped() -> None:
    prompt = ", ".join(f"Theme{i} Word{i}" for i in range(30)) + ", CAT, cat, Cat"
    _, _, tags = render_texts(TEE, prompt)
    assert len(tags) == MAX_TAGS
    _assert_etsy_tags(tags)
    assert "theme0 word0" in tags


def test_template_tags_that_are_too_long_are_cut() -> None:
    template = TEE.model_copy(
        update={"tags_template": ["{short_prompt}", "Extraordinarily Long Tag Text Here!!"]}
    )
    _, _, tags = render_texts(template, "majestic purple elephant dancing")
    _assert_etsy_tags(tags)
    assert tags[0] == "majestic purple"
    assert tags[1] == "extraordinarily long"


def test_prompt_braces_are_not_placeholders() -> None:
    title, description, _ = render_texts(TEE, "{color} and {prompt} {0} {product.__class__}")
    assert "White" not in title
    assert "White" not in description.split("\n")[0]
    assert "T-Shirt" not in description.split("\n")[0]


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(ValidationError, match="empty prompt"):
        render_texts(TEE, "   ")


def test_rendered_texts_build_a_listing_spec(tmp_path: Path) -> None:
    title, description, tags = render_texts(TEE, "a cat in a hat, watercolor, 4k " * 20)
    spec = ListingSpec.build(
        idem_key="k",
        title=title,
        description=description,
        tags=tuple(tags),
        design_path=tmp_path / "d.png",
        design_sha256="0" * 64,
        blueprint_id=TEE.blueprint_id,
        print_provider_id=TEE.print_provider_id,
        variants=(VariantPrice(variant_id=1, price=TEE.price.base),),
        placement=TEE.placement.for_listing(),
    )
    assert spec.tags == tuple(tags)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=600).filter(lambda s: s.strip()))
def test_any_prompt_gives_valid_texts(prompt: str) -> None:
    template: ProductTemplate = TEE
    title, _, tags = render_texts(template, prompt)
    assert 0 < len(title) <= MAX_TITLE_CHARS
    for ch in "%:&+":
        assert title.count(ch) <= 1
    _assert_etsy_tags(tags)
    assert ETSY_TAG_CHAR.match(" ".join(tags) or "x")


# --- the seller's own words ---------------------------------------------------------------------


def test_the_sellers_words_replace_what_the_prompt_gives() -> None:
    prompt = "retro sunset over mountains, vector t-shirt design, masterpiece"
    words = ListingCopy(name="Desert Sunset Ride", description="A warm 70s sunset.", tags=("70s",))
    title, description, tags = render_texts(TEE, prompt, copy=words)
    assert title == f"Desert Sunset Ride {TEE.product_label}"
    assert description.startswith("A warm 70s sunset.") and "masterpiece" not in description
    assert tags[0] == "70s"
    assert "mountains" not in tags  # the seller's tags replace the prompt's words
    assert clean_tag(TEE.product_label) in tags  # the template's own tags still come
    # a field left empty keeps what the prompt gives
    only_name = ListingCopy(name="Desert Sunset Ride")
    _t, plain_description, plain_tags = render_texts(TEE, prompt, copy=only_name)
    assert (plain_description, plain_tags) == render_texts(TEE, prompt)[1:]


def test_listing_problems_name_every_limit_the_words_break() -> None:
    prompt = "a fox"
    assert listing_problems(TEE, prompt, None) == []
    assert listing_problems(TEE, prompt, ListingCopy(name="Fox", tags=("fox", "forest"))) == []
    long_name = ListingCopy(name="word " * 30)
    (problem,) = listing_problems(TEE, prompt, long_name)
    assert "title" in problem and f"at most {MAX_TITLE_CHARS}" in problem
    long_tag = ListingCopy(tags=("a" * (MAX_TAG_CHARS + 1),))
    assert any(
        "tag" in p and str(MAX_TAG_CHARS + 1) in p for p in listing_problems(TEE, prompt, long_tag)
    )
    many = ListingCopy(tags=tuple(f"tag{i}" for i in range(MAX_TAGS + 1)))
    assert listing_problems(TEE, prompt, many) == [f"{MAX_TAGS + 1} tags; at most {MAX_TAGS}"]
    symbols = ListingCopy(tags=("!!!",))
    assert "no letters or digits" in listing_problems(TEE, prompt, symbols)[0]
