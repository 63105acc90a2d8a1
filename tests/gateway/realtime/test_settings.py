"""Settings from a config table, provider profiles (URL, headers, TLS), the API key's sources,
and the wire audio formats."""

from __future__ import annotations

import base64
import os
import pickle
import ssl
import tomllib
from pathlib import Path

import numpy as np
import pytest

from dsp.g711 import ulaw_decode, ulaw_encode
from gateway.errors import ConfigError
from gateway.realtime import RealtimeConfigError, RealtimeSettings, settings_from_config
from gateway.realtime.audio import DownlinkDecoder, UplinkEncoder, decode_base64, parse_format
from gateway.realtime.errors import MalformedEvent
from gateway.realtime.profiles import auth_headers, check_url, connection_url, tls_context
from gateway.realtime.secrets import ApiKey, key_from_env, key_from_file
from gateway.realtime.settings import SemanticVad, ServerVad, ToolSchema, Transcription

FULL = """
[realtime]
provider = "azure"
azure_resource = "contoso-voice"
model = "my-realtime"
api_key_env = "TIPRING_TEST_KEY"
instructions = "You answer the phone."
voice = "cedar"
speed = 1.1
input_format = "audio/pcma"
output_format = "audio/pcm"
noise_reduction = "far_field"
append_ms = 20
rotate_after_s = 1800
turn_detection = { type = "semantic_vad", eagerness = "high", interrupt_response = false }
transcription = { model = "gpt-4o-mini-transcribe", language = "de" }
[[realtime.tools]]
name = "hang_up"
description = "End the call."
"""


def test_a_full_config_table_reads_into_typed_settings() -> None:
    settings = settings_from_config(tomllib.loads(FULL)["realtime"])
    assert settings == RealtimeSettings(
        provider="azure", azure_resource="contoso-voice", model="my-realtime",
        api_key_env="TIPRING_TEST_KEY", instructions="You answer the phone.", voice="cedar",
        speed=1.1, input_format="audio/pcma", output_format="audio/pcm",
        noise_reduction="far_field", append_ms=20, rotate_after_s=1800,
        turn_detection=SemanticVad("high", interrupt_response=False),
        transcription=Transcription("gpt-4o-mini-transcribe", "de"),
        tools=(ToolSchema("hang_up", "End the call."),),
    )  # fmt: skip
    assert settings.frames_per_append == 1


def test_defaults_are_pcmu_server_vad_and_40_ms_appends() -> None:
    settings = settings_from_config({})
    assert (settings.input_format, settings.output_format) == ("audio/pcmu", "audio/pcmu")
    assert settings.turn_detection == ServerVad()
    assert settings.frames_per_append == 2
    td = settings_from_config({"turn_detection": {"type": "none"}}).turn_detection
    assert td is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"voise": "marin"}, "realtime.voise is not a setting"),
        ({"voice": 3}, "realtime.voice must be a str, got 3"),
        ({"speed": True}, "realtime.speed must be a number, got True"),
        ({"provider": "opnai"}, "realtime.provider 'opnai' is not one of openai, azure"),
        ({"input_format": "g711_ulaw"}, "realtime.input_format 'g711_ulaw' is not one of"),
        ({"append_ms": 30}, "realtime.append_ms 30 is not one of 20, 40, 60, 80, 100"),
        ({"rotate_after_s": 3700}, "realtime.rotate_after_s 3700 must be between 0 and 3600"),
        ({"speed": 2.0}, "realtime.speed 2 is not within 0.25-1.5"),
        ({"turn_detection": {"type": "magic"}}, "realtime.turn_detection.type 'magic'"),
        ({"turn_detection": {"threshold": "high"}}, "turn_detection.threshold must be a number"),
        ({"turn_detection": {"type": "semantic_vad", "eagerness": "very"}}, "eagerness 'very'"),
        ({"turn_detection": {"silence": 5}}, "realtime.turn_detection.silence is not a setting"),
        ({"transcription": "yes"}, "realtime.transcription must be a table"),
        ({"tools": [{"description": "x"}]}, "realtime.tools[0].name must be a non-empty"),
        ({"tools": [{"name": "a"}, {"name": "a"}]}, "a name appears twice"),
        ({"noise_reduction": "loud"}, "realtime.noise_reduction 'loud' is not one of"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_its_key(table: dict[str, object],
                                                        message: str) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_from_config(table)


def test_errors_name_the_section_they_were_read_from() -> None:
    with pytest.raises(RealtimeConfigError, match=r"tipring.toml:realtime.voice must be"):
        settings_from_config({"voice": 1}, where="tipring.toml:realtime")


# --- profiles ---------------------------------------------------------------------------------


def test_each_provider_connects_where_and_how_its_docs_say() -> None:
    key = ApiKey("k3y-VALUE", "test")
    openai = RealtimeSettings()
    assert connection_url(openai) == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"
    assert auth_headers(openai, key) == [(b"authorization", b"Bearer k3y-VALUE")]
    azure = RealtimeSettings(provider="azure", azure_resource="contoso", model="rt-deploy")
    assert connection_url(azure) == \
        "wss://contoso.openai.azure.com/openai/v1/realtime?model=rt-deploy"  # fmt: skip
    assert auth_headers(azure, key) == [(b"api-key", b"k3y-VALUE")]
    inworld = RealtimeSettings(provider="inworld")
    url = connection_url(inworld)
    assert url.startswith("wss://api.inworld.ai/api/v1/realtime/session?key=tipring-")
    assert url.endswith("&protocol=realtime")
    assert url != connection_url(inworld)  # a fresh session id each connection
    assert auth_headers(inworld, key) == [(b"authorization", b"Basic k3y-VALUE")]
    local = RealtimeSettings(provider="local")
    assert connection_url(local) == "ws://127.0.0.1:8765/v1/realtime?model=tipring-local"
    assert auth_headers(local, None) == []
    for settings in (openai, azure, inworld, local):
        names = [name for name, _ in auth_headers(settings, key)]
        assert b"openai-beta" not in names


def test_a_provider_that_needs_a_key_refuses_to_start_without_one() -> None:
    with pytest.raises(RealtimeConfigError, match="provider openai needs an API key"):
        auth_headers(RealtimeSettings(), None)
    with pytest.raises(RealtimeConfigError, match="azure_resource '' must name"):
        connection_url(RealtimeSettings(provider="azure"))


@pytest.mark.parametrize("url", [
    "wss://gateway.example.com/v1/realtime", "ws://127.0.0.1:8765/v1/realtime",
    "ws://localhost/v1/realtime", "ws://[::1]:9/v1/realtime", "ws://127.9.9.9/x",
])  # fmt: skip
def test_wss_anywhere_and_plain_ws_on_loopback_are_allowed(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "message"), [
    ("ws://10.0.0.5:8765/v1/realtime", "plain ws:// is only allowed to a loopback host"),
    ("ws://api.openai.com/v1/realtime", "plain ws:// is only allowed to a loopback host"),
    ("https://api.openai.com/v1/realtime", "the scheme must be wss://"),
    ("wss:///v1/realtime", "names no host"),
    ("ws://127.0.0.1:99999/", "is not a URL"),
])  # fmt: skip
def test_plain_ws_elsewhere_and_other_schemes_are_refused(url: str, message: str) -> None:
    with pytest.raises(RealtimeConfigError, match=message):
        check_url(url)
    with pytest.raises(RealtimeConfigError, match=message):
        connection_url(RealtimeSettings(provider="local", url=url))


def test_tls_verifies_certificates_and_hostnames_with_the_system_bundle() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.get_ca_certs() or context.cert_store_stats()["x509_ca"] >= 0


# --- the key ----------------------------------------------------------------------------------

SECRET = "sk-tipring-TEST-0123456789abcdef"


def test_a_key_file_readable_by_others_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    path.chmod(0o644)
    with pytest.raises(RealtimeConfigError, match=r"mode 0644: others can read it; run chmod 600"
                       ) as caught:  # fmt: skip
        key_from_file(path)
    assert SECRET not in str(caught.value)
    path.chmod(0o600)
    key = key_from_file(path)
    assert key.reveal() == SECRET
    assert key.source == f"file {path}"


def test_key_sources_fail_clearly_and_never_show_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RealtimeConfigError, match="No such file"):
        key_from_file(tmp_path / "absent")
    with pytest.raises(RealtimeConfigError, match="TIPRING_NO_SUCH_KEY is not set"):
        key_from_env("TIPRING_NO_SUCH_KEY")
    monkeypatch.setenv("TIPRING_TEST_KEY", f"  {SECRET}\n")
    key = key_from_env("TIPRING_TEST_KEY")
    assert key.reveal() == SECRET
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert SECRET not in shown
        assert "redacted" in shown
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(RealtimeConfigError, match="spaces or control characters") as caught:
        ApiKey("sk-abc\r\nX-Evil: 1", "test")
    assert "sk-abc" not in str(caught.value)
    assert os.environ["TIPRING_TEST_KEY"].strip() == SECRET


# --- wire audio -------------------------------------------------------------------------------


def test_pcmu_passes_through_and_pcm_is_24k_little_endian() -> None:
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal(320) * 3000).astype(np.int16)
    wire = base64.b64decode(UplinkEncoder("audio/pcmu").encode(pcm))
    assert wire == ulaw_encode(pcm).tobytes()
    assert np.array_equal(DownlinkDecoder("audio/pcmu").decode("i", wire), ulaw_decode(
        ulaw_encode(pcm)))  # fmt: skip
    wire24 = base64.b64decode(UplinkEncoder("audio/pcm").encode(pcm))
    assert len(wire24) == 320 * 3 * 2
    decoder = DownlinkDecoder("audio/pcm")
    halves = [decoder.decode("i", wire24[:961]), decoder.decode("i", wire24[961:])]
    assert sum(h.size for h in halves) == 320  # the odd byte waited for its partner
    assert decoder.decode("j", b"\x01").size == 0  # a new item starts a fresh stream


def test_formats_parse_from_ga_objects_and_beta_strings() -> None:
    assert parse_format({"type": "audio/pcmu"}) == "audio/pcmu"
    assert parse_format({"type": "audio/pcm", "rate": 24000}) == "audio/pcm"
    assert parse_format({"type": "audio/pcm"}) == "audio/pcm"
    assert parse_format({"type": "audio/pcm", "rate": 16000}) is None
    assert parse_format("g711_alaw") == "audio/pcma"
    assert parse_format(None) is None
    with pytest.raises(MalformedEvent, match="not valid base64"):
        decode_base64("abc*", "response.output_audio.delta")
