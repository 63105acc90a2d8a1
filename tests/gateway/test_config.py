"""gateway.config and gateway.config_tables: the shipped example and a minimal file load with
the documented values; every mistake is a `ConfigError` naming the dotted key, the value and
what is allowed; key files are mode-checked and never shown; profiles inherit from
`[realtime]`/`[tools]`/`[agent]`; `flatten` and `SECRET_KEY` for the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.call_config import GREETING, CallConfig
from gateway.config import SECRET_KEY, AppConfig, flatten, load_config, parse
from gateway.config_tables import AdapterConfig, ServiceConfig
from gateway.console_config import ConsoleConfig
from gateway.errors import ConfigError
from gateway.line_config import LineConfig
from gateway.store_export import DEFAULT_DB
from gateway.store_retention import Retention

EXAMPLE = Path(__file__).parents[2] / "deploy_pi" / "tipring.toml.example"
EXAMPLE_KEY_LINE = 'api_key_file = "/etc/tipring/secrets/openai.key"'
KEY = "sk-test-config-7c1e9a0b5d"
LOCAL = '\n[realtime]\nprovider = "local"\n'  # no key needed: the local server's profile


def key_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "openai.key"
    path.write_text(KEY + "\n")
    path.chmod(mode)
    return path


def write_config(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "tipring.toml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def load_text(tmp_path: Path, text: str) -> AppConfig:
    return load_config(write_config(tmp_path, text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    return str(caught.value)


def nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` as `{"a": {"b": 1}}`."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, last = key.split(".")
        table = out
        for name in parents:
            table = table.setdefault(name, {})
        table[last] = value
    return out


# --- files that load -----------------------------------------------------------------------


def test_the_shipped_example_loads_with_its_documented_values(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert EXAMPLE_KEY_LINE in text  # the line this test points at a key of its own
    key = key_file(tmp_path)
    config = load_text(tmp_path, text.replace(EXAMPLE_KEY_LINE, f'api_key_file = "{key}"'))

    assert config.adapter == AdapterConfig("tipring", "/dev/tipring-adapter", 921600)
    assert config.store.path == Path("/var/lib/tipring/calls.db")
    assert config.store.retention == Retention(90.0, 256 << 20, Path("/var/lib/tipring"))
    assert config.console is not None
    assert (config.console.device, config.console.baudrate) == ("/dev/serial0", 115200)
    assert config.console.password_hash == ""
    assert config.call.voicemail_dir == Path("/var/lib/tipring/voicemail")
    assert config.call.hold_timeout_s == 10.0
    assert config.service == ServiceConfig(log_level="info", drain_s=20.0)
    assert (config.line.fxo.answer_after_rings, config.line.fxo.default_profile) == (2, "default")
    assert config.line.fxs.hotline == "default"
    assert list(config.profiles) == ["default"]
    agent = config.profiles["default"]
    assert (agent.settings.provider, agent.settings.model) == ("openai", "gpt-realtime")
    assert (agent.settings.voice, agent.settings.api_key_file) == ("marin", str(key))
    assert agent.api_key is not None
    assert agent.api_key.reveal() == KEY
    assert agent.tools.names() == ["end_call", "get_time"]
    assert agent.greeting == "The phone call has just been answered. Greet the caller."
    assert config.path == tmp_path / "tipring.toml"
    assert config.document["adapter"]["kind"] == "tipring"
    assert KEY not in repr(config)


def test_a_minimal_config_takes_the_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, LOCAL)
    assert config.adapter == AdapterConfig()
    assert config.line == LineConfig()
    assert config.call == CallConfig()
    assert config.call.voicemail_dir is None
    assert config.console == ConsoleConfig()
    assert config.service == ServiceConfig("info", 20.0, 1.0, 60.0)
    assert config.store.path == DEFAULT_DB
    assert config.store.retention == Retention(90.0, 256 << 20, DEFAULT_DB.parent)
    assert list(config.profiles) == ["default"]
    agent = config.profiles["default"]
    assert (agent.settings.provider, agent.api_key, agent.greeting) == ("local", None, GREETING)
    assert agent.tools.names() == []


def test_a_file_of_exactly_the_size_cap_loads(tmp_path: Path) -> None:
    head = LOCAL.encode()
    padding = b"#" * ((1 << 20) - len(head) - 1) + b"\n"
    assert load_config(write_config(tmp_path, head + padding)).profiles["default"].api_key is None


# --- mistakes: each names the dotted key, the value and what is allowed ----------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # unknown tables and keys
        ("[bogus]\nx = 1", ("[bogus]", "tables: adapter, line, realtime")),
        ("[adapter]\nspeed = 1", ("adapter.speed", "known: baudrate, device, kind")),
        ("[store]\nretention = 30", ("store.retention", "known: path, retention_days")),
        ("[service]\ndrain = 5", ("service.drain ", "known: log_level, drain_s")),
        ("[call]\nhold_s = 5", ("call.hold_s", "hold_timeout_s", "voicemail_dir")),
        ("[call.vad]\nthreshold = 0.5", ("call.vad.threshold", "hangover_ms", "snr_db")),
        ('[agent]\ngreting = "hi"', ("agent.greting", "known: greeting")),
        ('[profiles.x]\nvoice = "y"', ("profiles.x.voice", "known: realtime, tools, greeting")),
        # wrong types
        ('[adapter]\nbaudrate = "fast"', ("adapter.baudrate", "'fast'", "a whole number")),
        ("[service]\ndrain_s = true", ("service.drain_s", "True", "a number")),
        ("[store]\nretention_days = false", ("store.retention_days", "False", "a number")),
        ("[adapter]\nbaudrate = 9600.5", ("adapter.baudrate", "9600.5", "a whole number")),
        (
            "[line.fxo]\nanswer_after_rings = 2.0",
            ("line.fxo.answer_after_rings", "2.0", "a whole number"),
        ),
        ("[call]\nvoicemail_dir = 3", ("call.voicemail_dir", "3", "a string")),
        ('[console]\nenabled = "yes"', ("console.enabled", "'yes'", "true or false")),
        ("[call.vad]\nhangover_ms = [1]", ("call.vad.hangover_ms", "[1]", "a number")),
        ("adapter = 3", ("adapter", "3", "must be a table")),
        # out of range
        ("[service]\ndrain_s = 100", ("service.drain_s", "100", "0..40")),
        ("[store]\nretention_days = -1", ("store.retention_days", "-1", "0..36500")),
        ("[call]\nhold_timeout_s = 301", ("call.hold_timeout_s", "301", "0..300")),
        ("[call.vad]\nhangover_ms = -5", ("call.vad.hangover_ms", "-5", "0..10000")),
        (
            "[call.vad]\non_probability = 0.4\noff_probability = 0.6",
            ("call.vad.off_probability", "0.6", "0..0.4"),
        ),
        # choices and relations
        ('[adapter]\nkind = "usb"', ("adapter.kind", "'usb'", "tipring, modem")),
        ("[adapter]\nbaudrate = 12345", ("adapter.baudrate", "12345", "115200", "921600")),
        ('[service]\nlog_level = "loud"', ("service.log_level", "'loud'", "debug, info, warning")),
        (
            "[service]\nrestart_min_s = 10\nrestart_max_s = 5",
            ("service.restart_max_s", "5", "below restart_min_s 10"),
        ),
        ('[store]\npath = "calls.db"', ("store.path", "'calls.db'", "absolute path")),
        ('[adapter]\ndevice = ""', ("adapter.device", "empty", "serial device")),
        # profiles
        (
            '[line.fxo]\ndefault_profile = "sales"',
            ("'sales'", "[profiles.sales]", "defined: default"),
        ),
        ('[profiles."bad name"]', ("profiles.bad name", "'bad name'", "letters, digits, - _")),
        (
            '[profiles.s.realtime]\nprovider = "opnai"',
            ("profiles.s.realtime.provider", "'opnai'", "openai, azure, inworld, local"),
        ),
        ("[profiles.s]\ngreeting = 1", ("profiles.s.greeting", "1", "a string")),
    ],
)
def test_a_mistake_names_the_key_the_value_and_what_is_allowed(
    tmp_path: Path, text: str, fragments: tuple[str, ...]
) -> None:
    message = error_of(tmp_path, text + "\n" + LOCAL)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, LOCAL + 'voice = "marin"\nmodel = \n')
    assert str(tmp_path / "tipring.toml") in message
    assert "is not valid TOML" in message
    assert "line 5" in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot be read: No such file or directory"),
        (LOCAL.encode() + b'voice = "caf\xe9"\n', f"is not UTF-8 text (byte {len(LOCAL) + 12})"),
        (LOCAL.encode() + b"#" * (1 << 20), "is over 1024 KiB: not a config"),
    ],
)
def test_a_file_that_is_not_a_config_is_refused_naming_it(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / "tipring.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"config file {path} {fragment}"


# --- secrets ---------------------------------------------------------------------------------


def test_a_key_file_others_can_read_is_refused_without_showing_it(tmp_path: Path) -> None:
    key = key_file(tmp_path, 0o644)
    message = error_of(tmp_path, f'[realtime]\nprovider = "openai"\napi_key_file = "{key}"\n')
    assert str(key) in message
    assert "mode 0644" in message
    assert f"chmod 600 {key}" in message
    assert KEY not in message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("missing.key", "cannot be read: No such file or directory"), ("a\\u0000b", "NUL")],
)
def test_a_key_file_that_cannot_be_read_is_named(tmp_path: Path, name: str, fragment: str) -> None:
    text = f'[realtime]\nprovider = "openai"\napi_key_file = "{tmp_path}/{name}"\n'
    message = error_of(tmp_path, text)
    assert message.startswith("API key file ")
    assert f"{tmp_path}/" in message
    assert fragment in message


# --- profiles, console, paths ----------------------------------------------------------------

PROFILES = """
[realtime]
provider = "local"
voice = "marin"
instructions = "Answer for the shop."

[tools.builtin]
end_call = true
get_time = true

[agent]
greeting = "Say hello."

[line.fxo]
default_profile = "sales"

[profiles.sales]
greeting = ""

[profiles.sales.realtime]
voice = "x"

[profiles.sales.tools.builtin]
end_call = true

[profiles.support]
"""


def test_a_profile_inherits_what_it_does_not_set(tmp_path: Path) -> None:
    config = load_text(tmp_path, PROFILES)
    assert list(config.profiles) == ["default", "sales", "support"]
    default, sales, support = (config.profiles[n] for n in ("default", "sales", "support"))
    assert (default.settings.voice, default.greeting) == ("marin", "Say hello.")
    assert default.tools.names() == ["end_call", "get_time"]

    assert (sales.settings.voice, sales.settings.provider) == ("x", "local")
    assert sales.settings.instructions == "Answer for the shop."
    assert sales.tools.names() == ["end_call"]  # its own [tools], not added to the default's
    assert sales.greeting is None  # "": the agent waits for the caller

    assert support.settings == default.settings
    assert (support.greeting, support.tools.names()) == ("Say hello.", ["end_call", "get_time"])
    assert config.line.fxo.default_profile == "sales"


def test_a_disabled_console_is_none(tmp_path: Path) -> None:
    config = load_text(tmp_path, LOCAL + '[console]\nenabled = false\ndevice = "/dev/ttyAMA0"\n')
    assert config.console is None


@pytest.mark.parametrize(
    ("voicemail_dir", "expected"),
    [
        ("voicemail", Path("/srv/tipring/voicemail")),
        ("vm/inbox", Path("/srv/tipring/vm/inbox")),
        ("/mnt/usb/voicemail", Path("/mnt/usb/voicemail")),
        ("", None),
    ],
)
def test_a_relative_voicemail_dir_is_under_the_store(
    tmp_path: Path, voicemail_dir: str, expected: Path | None
) -> None:
    text = f'[store]\npath = "/srv/tipring/calls.db"\n[call]\nvoicemail_dir = "{voicemail_dir}"\n'
    assert load_text(tmp_path, text + LOCAL).call.voicemail_dir == expected


# --- the console's view ----------------------------------------------------------------------


def test_flatten_gives_dotted_keys_in_file_order_with_arrays_whole() -> None:
    document = {
        "line": {
            "tone_plan": "us",
            "fxo": {
                "answer_after_rings": 2,
                "deny": ["1900*", "anonymous"],
                "rules": [{"numbers": ["+4930*"], "profile": "default"}],
            },
        },
        "realtime": {"voice": "marin", "turn_detection": {"type": "semantic_vad"}},
    }
    assert list(flatten(document).items()) == [
        ("line.tone_plan", "us"),
        ("line.fxo.answer_after_rings", 2),
        ("line.fxo.deny", ["1900*", "anonymous"]),
        ("line.fxo.rules", [{"numbers": ["+4930*"], "profile": "default"}]),
        ("realtime.voice", "marin"),
        ("realtime.turn_detection.type", "semantic_vad"),
    ]
    assert flatten({}) == {}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("console.password_hash", True),
        ("tools.http.token", True),
        ("x.api_key", True),
        ("password", True),
        ("realtime.api_key_file", False),
        ("realtime.api_key_env", False),
        ("console.password_hash_file", False),
        ("realtime.voice", False),
    ],
)
def test_secret_key_matches_secret_settings_only(key: str, secret: bool) -> None:
    assert bool(SECRET_KEY.search(key)) is secret


# --- any junk is a ConfigError ---------------------------------------------------------------

JUNK_KEYS = (
    "adapter.baudrate",
    "adapter.kind",
    "store.path",
    "store.retention_days",
    "service.drain_s",
    "service.restart_max_s",
    "call.hold_timeout_s",
    "call.voicemail_dir",
    "call.vad.off_probability",
    "line.fxo.answer_after_rings",
    "console.baudrate",
    "agent.greeting",
    "realtime.api_key_file",
    "profiles.sales.greeting",
)
toml_scalars = (
    st.text(max_size=12)
    | st.integers(-(2**63), 2**63 - 1)  # TOML's integers are 64-bit
    | st.floats()  # inf and nan included: TOML has them
    | st.booleans()
)
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@given(settings=st.dictionaries(st.sampled_from(JUNK_KEYS), toml_values, min_size=1, max_size=4))
def test_any_value_for_any_key_loads_or_is_a_config_error(settings: dict[str, Any]) -> None:
    document = nested({"realtime.provider": "local", **settings})
    try:
        config = parse(document)
    except ConfigError:
        return  # a refusal is fine: anything else (TypeError, ValueError, ...) fails the test
    assert "default" in config.profiles
