"""The seller's own cost table: validation, the merge with learned costs (a cost learned from
Printify wins, else the entered one), the profit preview before any draft, and the JSON store."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pod_studio.adapters.marketplaces.export import ExportMarketplace
from pod_studio.adapters.storage.seller_costs import JsonSellerCostStore
from pod_studio.domain.costs import (
    CostSource,
    SellerCosts,
    TemplateCosts,
    merge_costs,
    merge_shipping,
)
from pod_studio.domain.products import default_templates
from pod_studio.services.publish_platforms import BasicPlatform
from pod_studio.services.publishing import PublishService, TemplateCatalog

TEE = default_templates()[0]
ENTERED = TemplateCosts(sizes={"S": "9.50", "M": 9.5, "2XL": "12"}, shipping="4.75")


def test_entered_costs_are_decimals_rounded_to_cents() -> None:
    assert ENTERED.sizes == {"S": Decimal("9.50"), "M": Decimal("9.50"), "2XL": Decimal("12.00")}
    assert ENTERED.shipping == Decimal("4.75")
    assert TemplateCosts(shipping="  ").shipping is None


@pytest.mark.parametrize("bad", ["-1", "abc", "20000", "NaN"])
def test_a_cost_that_is_not_a_cost_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cost of size S"):
        TemplateCosts(sizes={"S": bad})


def test_a_learned_cost_wins_else_the_entered_one_else_none() -> None:
    merged = merge_costs(
        [
            ("Black / S", "S", Decimal("11.34")),  # learned from a draft
            ("Black / M", "M", None),  # entered
            ("Black / L", "L", None),  # neither: left out
        ],
        ENTERED,
    )
    assert [(m.variant, m.cost, m.source) for m in merged] == [
        ("Black / S", Decimal("11.34"), CostSource.CATALOG),
        ("Black / M", Decimal("9.50"), CostSource.ENTERED),
    ]


def test_shipping_from_the_catalog_wins_else_the_entered_one_else_zero() -> None:
    assert merge_shipping(Decimal("5.10"), ENTERED) == (Decimal("5.10"), CostSource.CATALOG)
    assert merge_shipping(None, ENTERED) == (Decimal("4.75"), CostSource.ENTERED)
    assert merge_shipping(None, TemplateCosts()) == (Decimal("0.00"), None)


def test_with_template_replaces_and_drops_empty_entries() -> None:
    table = SellerCosts().with_template("Tee", ENTERED)
    assert table.for_template("Tee") == ENTERED
    assert table.with_template("Tee", TemplateCosts()).templates == {}
    assert SellerCosts().for_template("missing").empty


def _service(catalog: TemplateCatalog, costs: SellerCosts, tmp_path: Path) -> PublishService:
    return PublishService(
        [BasicPlatform(ExportMarketplace(tmp_path / "export"), catalog=catalog)],
        {TEE.name: TEE},
        work_dir=tmp_path,
        sink=lambda _e: None,
        prepare=lambda *_a, **_k: None,  # type: ignore[arg-type,return-value]
        seller_costs=costs,
    )


@pytest.mark.asyncio
async def test_profit_preview_uses_entered_costs_before_any_draft(tmp_path: Path) -> None:
    costs = SellerCosts().with_template(TEE.name, ENTERED)
    service = _service(TemplateCatalog(), costs, tmp_path)
    lines = await service.profit_preview(None, TEE.name)
    assert {line.size for line in lines} == {"S", "M", "2XL"}
    assert len(lines) == 3 * len(TEE.colors)
    two_xl = next(line for line in lines if line.size == "2XL")
    assert two_xl.price == Decimal("21.99") and two_xl.cost == Decimal("12.00")
    assert two_xl.profit == Decimal("21.99") - Decimal("12.00") - Decimal("4.75")
    assert two_xl.margin == Decimal("0.2383")  # 5.24 / 21.99
    assert two_xl.cost_source is CostSource.ENTERED
    assert two_xl.shipping_source is CostSource.ENTERED


@pytest.mark.asyncio
async def test_profit_preview_prefers_learned_costs_and_shipping(tmp_path: Path) -> None:
    learned = TemplateCatalog(costs={"S": Decimal("11.34")}, shipping=Decimal("5.10"))
    costs = SellerCosts().with_template(TEE.name, ENTERED)
    lines = await _service(learned, costs, tmp_path).profit_preview(None, TEE.name)
    small = next(line for line in lines if line.size == "S")
    medium = next(line for line in lines if line.size == "M")
    assert (small.cost, small.cost_source) == (Decimal("11.34"), CostSource.CATALOG)
    assert (medium.cost, medium.cost_source) == (Decimal("9.50"), CostSource.ENTERED)
    assert {line.shipping for line in lines} == {Decimal("5.10")}
    assert {line.shipping_source for line in lines} == {CostSource.CATALOG}


@pytest.mark.asyncio
async def test_no_costs_at_all_gives_no_preview(tmp_path: Path) -> None:
    assert (
        await _service(TemplateCatalog(), SellerCosts(), tmp_path).profit_preview(None, TEE.name)
        == []
    )


def test_store_round_trip_and_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "config" / "seller_costs.json"
    store = JsonSellerCostStore(path)
    assert store.load() == SellerCosts()
    table = SellerCosts().with_template(TEE.name, ENTERED)
    store.save(table)
    assert '"9.50"' in path.read_text(encoding="utf-8")
    assert store.load() == table
    path.write_text('{"templates": {"Tee": {"sizes": {"S": "-3"}}}}', encoding="utf-8")
    assert store.load() == SellerCosts()
    assert not path.exists()
    assert len(list(path.parent.glob("seller_costs.json.corrupt-*"))) == 1
