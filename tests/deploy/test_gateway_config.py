"""`[gateway]` in lockgate.toml: defaults, values, and errors that name the file and key."""

from __future__ import annotations

import pytest

from lockgate.errors import ConfigError
from lockgate.service.gatewayconfig import GatewaySettings
from lockgate.service.project import parse


def write(tmp_path, text):
    path = tmp_path / "lockgate.toml"
    path.write_text(text)
    return path


def test_defaults_bind_loopback_and_need_tokens(tmp_path):
    settings = parse(write(tmp_path, "")).gateway
    assert settings == GatewaySettings()
    assert (settings.host, settings.port, settings.open) == ("127.0.0.1", 8788, False)


def test_settings_and_evaluators_parse(tmp_path):
    settings = parse(
        write(
            tmp_path,
            """
[gateway]
port = 9000
open = true
answerer = "my_llm:answer"
reload_interval = 1
flush_size = 50

[[gateway.evaluators]]
type = "groundedness"
params = { threshold = 0.5 }
routes = ["support-bot"]
""",
        )
    ).gateway
    assert (settings.port, settings.open, settings.answerer) == (9000, True, "my_llm:answer")
    assert settings.reload_interval == 1.0 and settings.flush_size == 50
    (evaluator,) = settings.evaluators
    assert evaluator.spec() == {"type": "groundedness", "params": {"threshold": 0.5}}
    assert evaluator.applies_to("support-bot") and not evaluator.applies_to("other")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("prot = 1", r"lockgate.toml:3: \[gateway\] prot is an unknown key"),
        ('port = "x"', r"lockgate.toml:3: \[gateway\] port must be int"),
        ("open = 1", r"\[gateway\] open must be bool"),
        ("port = 70000", r"port must be 1..65535"),
        ('answerer = "no-colon"', r"answerer must be 'module:function'"),
        ("flush_interval = 0", r"flush_interval must be between 0 and 60"),
        ("[[gateway.evaluators]]\nparams = {}", r"evaluators #1: needs type"),
    ],
)
def test_mistakes_name_the_file_line_and_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        parse(write(tmp_path, f"\n[gateway]\n{body}\n"))
