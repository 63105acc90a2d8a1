"""gateway.tools_config: the `[tools]` table as a registry, and every mistake in it named:
the key, the value, what is allowed. Secret files: mode checked, content never shown."""

from __future__ import annotations

import pickle
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

import gateway.tools_config
from gateway.errors import ConfigError
from gateway.tools_config import tools_from_config

SECRET = "tok-3f9a-very-secret"


def crm(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "crm",
        "description": "The CRM.",
        "url": "https://crm.example.com/api?v=2",
        "method": "GET",
        "parameters": {
            "type": "object",
            "properties": {"phone": {"type": "string"}, "pin": {"type": "string"}},
        },
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


def schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


SCHEMA_KEYWORDS = (
    "additionalProperties, default, description, enum, examples, items, properties, required,"
    " title, type"
)
ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"http": [crm(), crm(name="b", method="FETCH")]},
        "tools.http[1].method 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE",
    ),
    ({"htpp": []}, "tools.htpp is not a known key; known: builtin, http"),
    (
        {"builtin": {"hang_up": True}},
        "tools.builtin.hang_up is not a built-in tool; built-ins: end_call, transfer_call,"
        " send_dtmf, get_time",
    ),
    (
        {"builtin": {"get_time": {"tz": "UTC"}}},
        "tools.builtin.get_time.tz is not a known key; known: description, timeout_s, timezone",
    ),
    ({"builtin": {"end_call": "yes"}}, "tools.builtin.end_call 'yes' is not a table"),
    ({"builtin": []}, "tools.builtin [] is not a table"),
    (
        {"builtin": {"end_call": {"timeout_s": 0}}},
        "tools.builtin.end_call.timeout_s 0.0 is not in (0, 60.0]",
    ),
    (
        {"builtin": {"end_call": {"description": ""}}},
        "tools.builtin.end_call.description '' is not a non-empty string",
    ),
    (
        {"builtin": {"transfer_call": {}}},
        "tools.builtin.transfer_call.targets is empty: name at least one (name = dial string)",
    ),
    (
        {"builtin": {"get_time": {"timezone": "Mars/Olympus"}}},
        "tools.builtin.get_time.timezone 'Mars/Olympus' is not an IANA time zone"
        " (like 'Europe/Berlin')",
    ),
    ({"http": [crm(timeout_s="5")]}, "tools.http[0].timeout_s '5' is not a number"),
    ({"http": [crm(timeout_s=120)]}, "tools.http[0].timeout_s 120.0 is not in (0, 60.0]"),
    ({"http": [crm(url=None)]}, "tools.http[0].url is missing"),
    ({"http": [crm(urll="x")]}, "tools.http[0].urll is not a known key; known: name,"),
    (
        {"http": [crm(url="ftp://crm.example.com/")]},
        "tools.http[0].url 'ftp://crm.example.com/' is not an http:// or https:// URL",
    ),
    (
        {"http": [crm(url="https://bob:pw@crm.example.com/")]},
        "tools.http[0].url has a user or password: use auth_secret_file instead",
    ),
    ({"http": {"name": "crm"}}, "tools.http {'name': 'crm'} is not a list of tables"),
    ({"http": ["crm"]}, "tools.http[0] 'crm' is not a table"),
    (
        {"http": [crm(parameters=schema(n={"type": "integer", "minimum": 1}))]},
        "tools.http[0].parameters.properties.n.minimum is not a supported schema keyword;"
        f" use {SCHEMA_KEYWORDS}",
    ),
    (
        {"http": [crm(parameters={"type": "array"})]},
        "tools.http[0].parameters.type must be 'object' (function parameters), got 'array'",
    ),
    (
        {"http": [crm(parameters={**schema(), "required": ["phone"]})]},
        "tools.http[0].parameters.required names 'phone', which is not in properties",
    ),
    (
        {"http": [crm(parameters=schema(c={"type": "string", "enum": ["a", 3]}))]},
        "tools.http[0].parameters.properties.c.enum value 3 is not of type string",
    ),
    (
        {"http": [crm(parameters=schema(c={"type": ["string", "null"]}))]},
        "tools.http[0].parameters.properties.c.type ['string', 'null'] is not one of object,"
        " string, integer, number, boolean, array",
    ),
    (
        {"http": [crm(parameters=schema(c={"type": "string", "items": {}}))]},
        "tools.http[0].parameters.properties.c.items needs type 'array', got 'string'",
    ),
    (
        {"http": [crm(parameters={**schema(), "additionalProperties": {}})]},
        "tools.http[0].parameters.additionalProperties {} is not true or false",
    ),
    (
        {"http": [crm(sensitive=["pinn"])]},
        "tools.http[0].sensitive names 'pinn', which no parameter is called",
    ),
    ({"http": [crm(sensitive="pin")]}, "tools.http[0].sensitive 'pin' is not a list of strings"),
    ({"http": [crm(), crm()]}, "tools.http[1].name 'crm' is already a tool"),
    (
        {"http": [crm(name="crm lookup")]},
        "tools.http[0].name 'crm lookup' is not 1-64 of A-Z a-z 0-9 _ -",
    ),
    (
        {"http": [crm(auth_header="Authorization")]},
        "tools.http[0]: auth_header goes with auth_secret_file or auth_secret_env",
    ),
    (
        {"http": [crm(auth_secret_env="CRM_TOKEN")]},
        "tools.http[0]: auth_header goes with auth_secret_file or auth_secret_env",
    ),
    (
        {"http": [crm(auth_header="X", auth_secret_env="A", auth_secret_file="/f")]},
        "tools.http[0]: auth_secret_file and auth_secret_env exclude each other",
    ),
    (
        {"http": [crm(auth_scheme="Bearer")]},
        "tools.http[0].auth_scheme needs auth_header and its secret",
    ),
    (
        {"http": [crm(parameters=schema(v={"type": "string"}))]},
        "tools.http[0].parameters.properties.v is fixed by the url's query",
    ),
]


@pytest.mark.parametrize(("config", "message"), ERRORS)
def test_config_errors_name_the_key_the_value_and_what_is_allowed(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        tools_from_config(config)
    assert str(caught.value).startswith(message)


def test_errors_carry_the_callers_prefix() -> None:
    with pytest.raises(ConfigError, match=r"^tipring.toml: tools.http\[0\].method 'get' is not"):
        tools_from_config({"http": [crm(method="get")]}, "tipring.toml: tools")


def test_builtins_are_on_only_when_listed() -> None:
    assert tools_from_config({}).names() == []
    config = {"builtin": {"end_call": True, "send_dtmf": False, "get_time": {}}}
    assert tools_from_config(config).names() == ["end_call", "get_time"]


def write_secret(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def with_secret(path: Path | str) -> dict[str, Any]:
    return {"http": [crm(auth_header="X-Api-Key", auth_secret_file=str(path))]}


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        (SECRET, 0o644, "has mode 0644: others can read it; run chmod 600 "),
        (SECRET, 0o640, "has mode 0640: others can read it; run chmod 600 "),
        (SECRET, 0o620, "has mode 0620: others can write it; run chmod 600 "),
        ("  \n", 0o600, "is empty"),
        (f"{SECRET}\nX-Admin: 1", 0o600, "holds spaces or control characters: one token only"),
        (f"Bearer {SECRET}", 0o600, "holds spaces or control characters: one token only"),
        (f"{SECRET}é", 0o600, "is not ASCII text"),
        ("x" * 5000, 0o600, "is over 4096 bytes: not a secret"),
    ],
)
def test_bad_secret_files_are_refused_without_showing_their_content(
    tmp_path: Path, text: str, mode: int, problem: str
) -> None:
    path = write_secret(tmp_path, text, mode)
    with pytest.raises(ConfigError) as caught:
        tools_from_config(with_secret(path))
    assert str(caught.value).startswith(f"tools.http[0].auth_secret_file '{path}' {problem}")
    assert SECRET not in str(caught.value)
    assert "xxxx" not in str(caught.value)


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        tools_from_config(with_secret(tmp_path / "nope"))
    assert str(caught.value) == (
        f"tools.http[0].auth_secret_file '{tmp_path / 'nope'}' cannot be read:"
        " No such file or directory"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_secret_file_is_accepted_and_hidden(tmp_path: Path, mode: int) -> None:
    registry = tools_from_config(with_secret(write_secret(tmp_path, f" {SECRET}\n", mode)))
    tool = registry.get("crm")
    assert tool is not None
    assert tool.function.auth.reveal() == SECRET  # type: ignore[attr-defined]
    assert SECRET not in repr(tool) + str(tool.function.auth)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(tool.function)


def test_the_documented_example_config_loads(tmp_path: Path) -> None:
    doc = gateway.tools_config.__doc__ or ""
    [example] = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    secret = write_secret(tmp_path, SECRET)
    example = example.replace("/etc/tipring/secrets/crm", str(secret))
    registry = tools_from_config(tomllib.loads(example)["tools"])
    assert registry.names() == ["end_call", "get_time", "transfer_call", "lookup_customer"]
    lookup = registry.get("lookup_customer")
    assert lookup is not None
    assert (lookup.timeout_s, lookup.sensitive) == (5.0, frozenset({"account_pin"}))
    assert lookup.function.auth.reveal() == SECRET  # type: ignore[attr-defined]
    assert lookup.function.auth_scheme == "Bearer"  # type: ignore[attr-defined]


def test_the_auth_token_may_come_from_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = crm(auth_header="X-Api-Key", auth_secret_env="TIPRING_TEST_CRM_TOKEN")
    monkeypatch.delenv("TIPRING_TEST_CRM_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        tools_from_config({"http": [entry]})
    assert str(caught.value) == (
        "tools.http[0].auth_secret_env TIPRING_TEST_CRM_TOKEN is not set or empty"
    )
    monkeypatch.setenv("TIPRING_TEST_CRM_TOKEN", f"{SECRET}\n")
    tool = tools_from_config({"http": [entry]}).get("crm")
    assert tool is not None
    assert tool.function.auth.reveal() == SECRET  # type: ignore[attr-defined]
    assert tool.function.auth.source == "environment variable TIPRING_TEST_CRM_TOKEN"  # type: ignore[attr-defined]
    assert SECRET not in repr(tool)
