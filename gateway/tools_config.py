"""The `[tools]` table of the config as a `ToolRegistry`: which built-ins are on, and the HTTP
tools the operator declared. Input is the table as a plain dict (as `tomllib` gives it); every
mistake is a `ConfigError` naming the key, the value and what is allowed:
`tools.http[1].method 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE`.

```toml
[tools.builtin]
end_call = true                                  # true, or a table of options
get_time = { timezone = "Europe/Berlin" }        # default: the box's own zone
transfer_call = { targets = { reception = "201", workshop = "fxs:2" } }
send_dtmf = false

[[tools.http]]
name = "lookup_customer"
description = "Find the caller's customer record by phone number."
url = "https://crm.example.com/api/customers"
method = "GET"                                   # GET DELETE: query string; others: JSON body
timeout_s = 5.0                                  # default 10, at most 60
auth_header = "Authorization"                    # optional, with the secret's source:
auth_scheme = "Bearer"                           # optional: the value is "Bearer <secret>"
auth_secret_file = "/etc/tipring/secrets/crm"    # mode 0600, one token (or auth_secret_env)
sensitive = ["account_pin"]                      # argument fields redacted in logs
[tools.http.parameters]                          # a JSON schema (gateway.tools_schema)
type = "object"
required = ["phone"]
additionalProperties = false
properties.phone = { type = "string", description = "E.164, like +4930123456" }
properties.account_pin = { type = "string" }
```

Every built-in also takes `description` and `timeout_s`. No `[tools]` table: no tools. The
auth token comes from `auth_secret_file` or `auth_secret_env` (an environment variable), read by
`gateway.secrets` as the realtime API key is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final, cast

import httpx

from gateway.errors import ConfigError
from gateway.secrets import Secret, secret_from_env, secret_from_file
from gateway.tools import ToolRegistry
from gateway.tools_builtin import (
    BUILTINS,
    END_CALL,
    GET_TIME,
    SEND_DTMF,
    TRANSFER_CALL,
    TRANSFER_TIMEOUT_S,
    WARM_ANSWER_S,
    WARM_OVERHEAD_S,
    end_call_tool,
    get_time_tool,
    send_dtmf_tool,
    transfer_call_tool,
)
from gateway.tools_http import METHODS, QUERY_METHODS, HttpCall, http_tool, tls_context
from gateway.tools_schema import check_schema, show
from gateway.tools_secure import COLLECT_DIGITS, KEYS, collect_digits_tool
from gateway.tools_types import DEFAULT_TIMEOUT_S, Tool

log = logging.getLogger(__name__)

TABLE_KEYS: Final = ("builtin", "http")
BUILTIN_KEYS: Final = {
    END_CALL: ("description", "timeout_s"),
    TRANSFER_CALL: ("description", "timeout_s", "targets", "answer_s"),
    SEND_DTMF: ("description", "timeout_s"),
    GET_TIME: ("description", "timeout_s", "timezone"),
}
HTTP_KEYS: Final = (
    "name", "description", "url", "method", "parameters", "timeout_s",
    "auth_header", "auth_scheme", "auth_secret_file", "auth_secret_env", "sensitive",
)  # fmt: skip
NO_PARAMETERS: Final = {"type": "object", "properties": {}}
TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2: a header name


def tools_from_config(config: Mapping[str, Any], where: str = "tools") -> ToolRegistry:
    """The registry the `[tools]` table declares (`where` prefixes every error's key)."""
    _known(config, TABLE_KEYS, where)
    registry = ToolRegistry()
    builtin = _table(config.get("builtin", {}), f"{where}.builtin")
    for name, options in builtin.items():
        key = f"{where}.builtin.{name}"
        if name not in (*BUILTINS, COLLECT_DIGITS):
            raise ConfigError(f"{key} is not a built-in tool; built-ins: "
                              f"{', '.join((*BUILTINS, COLLECT_DIGITS))}")  # fmt: skip
        if options is False or name == COLLECT_DIGITS:
            continue  # collect_digits: after the HTTP tools, one of which it delivers to
        registry.add(_builtin(name, {} if options is True else _table(options, key), key), key)
    http = config.get("http", [])
    if not isinstance(http, list):
        raise ConfigError(f"{where}.http {show(http)} is not a list of tables ([[tools.http]])")
    for index, entry in enumerate(http):
        key = f"{where}.http[{index}]"
        registry.add(_http(_table(entry, key), key), key)
    if builtin.get(COLLECT_DIGITS, False) is not False:
        _add_collect_digits(registry, builtin[COLLECT_DIGITS], f"{where}.builtin.{COLLECT_DIGITS}")
    if registry.needs_http:
        tls_context()  # load the CA bundle now, at start-up, not in the first call's audio path
    return registry


def _add_collect_digits(registry: ToolRegistry, options: object, where: str) -> None:
    table = _table(options, where)
    _known(table, KEYS, where)
    target_name = table.get("deliver_to")
    if not isinstance(target_name, str) or not target_name:
        raise ConfigError(f"{where}.deliver_to must name the HTTP tool that gets the digits")
    target = registry.remove(target_name)  # the model must not call it with digits of its own
    if target is None:
        raise ConfigError(f"{where}.deliver_to {target_name!r} is not a tool of [[tools.http]]; "
                          f"tools: {', '.join(registry.names()) or 'none'}")  # fmt: skip
    registry.add(collect_digits_tool(target, table, where), where)


def _builtin(name: str, options: Mapping[str, Any], where: str) -> Tool:
    _known(options, BUILTIN_KEYS[name], where)
    default_s = TRANSFER_TIMEOUT_S if name == TRANSFER_CALL else DEFAULT_TIMEOUT_S
    common: dict[str, Any] = {"timeout_s": _number(options, "timeout_s", where, default_s)}
    if "description" in options:
        common["description"] = _string(options, "description", where)
    match name:
        case "end_call":
            return end_call_tool(**common)
        case "send_dtmf":
            return send_dtmf_tool(**common)
        case "get_time":
            zone = _string(options, "timezone", where) if "timezone" in options else None
            return get_time_tool(zone, where=where, **common)
        case "transfer_call":
            targets = _table(options.get("targets", {}), f"{where}.targets")
            answer_s = _number(options, "answer_s", where, WARM_ANSWER_S)
            if common["timeout_s"] < answer_s + WARM_OVERHEAD_S:
                raise ConfigError(f"{where}.timeout_s {common['timeout_s']:g} is too short for "
                                  f"answer_s {answer_s:g}: at least answer_s + "
                                  f"{WARM_OVERHEAD_S:g}")  # fmt: skip
            return transfer_call_tool(cast(Mapping[str, str], targets), where=where,
                                      answer_s=answer_s, **common)  # fmt: skip
    raise AssertionError(name)  # BUILTINS and this match list the same names


def _http(entry: Mapping[str, Any], where: str) -> Tool:
    _known(entry, HTTP_KEYS, where)
    name = _string(entry, "name", where)
    method = _string(entry, "method", where)
    if method not in METHODS:
        raise ConfigError(f"{where}.method {show(method)} is not one of {', '.join(METHODS)}")
    parameters = _table(entry.get("parameters", NO_PARAMETERS), f"{where}.parameters")
    check_schema(parameters, f"{where}.parameters")  # before _property_names walks it
    header, secret, scheme = _auth(entry, where)
    call = HttpCall(name, _url(entry, where), method, header, secret, scheme)
    fixed = httpx.URL(call.url).params
    for field in parameters.get("properties", {}) if method in QUERY_METHODS else ():
        if field in fixed:
            raise ConfigError(f"{where}.parameters.properties.{field} is fixed by the url's query")
    sensitive = _strings(entry, "sensitive", where)
    for field in sensitive:
        if field not in _property_names(parameters):
            raise ConfigError(f"{where}.sensitive names '{field}', which no parameter is called")
    return http_tool(
        name,
        _string(entry, "description", where),
        parameters,
        call,
        timeout_s=_number(entry, "timeout_s", where, DEFAULT_TIMEOUT_S),
        sensitive=frozenset(sensitive),
    )


def _url(entry: Mapping[str, Any], where: str) -> str:
    text = _string(entry, "url", where)
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{where}.url {show(text)} is not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}.url {show(text)} is not an http:// or https:// URL")
    if url.userinfo:  # a password in the URL would be in every log line naming the URL
        raise ConfigError(f"{where}.url has a user or password: use auth_secret_file instead")
    return text


def _auth(entry: Mapping[str, Any], where: str) -> tuple[str | None, Secret | None, str]:
    """(header name, token, scheme) of the tool's auth header; (None, None, "") without one."""
    header = _string(entry, "auth_header", where) if "auth_header" in entry else None
    sources = [key for key in ("auth_secret_file", "auth_secret_env") if key in entry]
    if len(sources) > 1:
        raise ConfigError(f"{where}: auth_secret_file and auth_secret_env exclude each other")
    if (header is None) != (not sources):
        raise ConfigError(f"{where}: auth_header goes with auth_secret_file or auth_secret_env")
    if header is None:
        if "auth_scheme" in entry:
            raise ConfigError(f"{where}.auth_scheme needs auth_header and its secret")
        return None, None, ""
    if not TOKEN_RE.fullmatch(header):
        raise ConfigError(f"{where}.auth_header {show(header)} is not a header name")
    scheme = _string(entry, "auth_scheme", where) if "auth_scheme" in entry else ""
    if scheme and not TOKEN_RE.fullmatch(scheme):
        raise ConfigError(f"{where}.auth_scheme {show(scheme)} is not one word (like Bearer)")
    source = sources[0]
    name = _string(entry, source, where)
    if source == "auth_secret_file":
        secret = secret_from_file(name, f"{where}.{source}", Secret)
    else:
        secret = secret_from_env(name, f"{where}.{source}", Secret)
    if entry.get("url", "").startswith("http://"):
        log.warning("%s: %s sends its credential unencrypted (http://)", where, header)
    return header, secret, scheme


def _property_names(schema: Mapping[str, Any]) -> set[str]:
    """Every property name at any depth of a (checked) schema."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    names = set(properties)
    for sub in [*properties.values(), *([schema["items"]] if "items" in schema else [])]:
        names |= _property_names(sub)
    return names


def _known(table: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}.{key} is not a known key; known: {', '.join(keys)}")


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} {show(value)} is not a table")
    return value


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if value is None:
        raise ConfigError(f"{where}.{key} is missing")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key} {show(value)} is not a non-empty string")
    return value


def _number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{where}.{key} {show(value)} is not a number")
    return float(value)


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}.{key} {show(value)} is not a list of strings")
    return value
