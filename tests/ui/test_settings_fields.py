"""The Settings window's text fields, parsed and checked as the seller types."""

from __future__ import annotations

from pod_studio.app.settings import validate_server_url
from pod_studio.ui.settings_dialog import parse_workflow_values


def test_fixed_inputs_text_parses_json_values() -> None:
    assert parse_workflow_values("3.steps=30\n\n 9.filename_prefix = shop/tee \n3.cfg=6.5") == {
        "3.steps": 30,
        "9.filename_prefix": "shop/tee",
        "3.cfg": 6.5,
    }


def test_the_server_field_refuses_a_url_with_a_password_without_repeating_it() -> None:
    reason = validate_server_url("http://admin:pw-secret-2@127.0.0.1:8188")
    assert reason and "user name or password" in reason and "pw-secret-2" not in reason
