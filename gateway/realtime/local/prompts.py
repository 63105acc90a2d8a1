"""The local server's spoken prompts: 8 kHz mu-law files and their transcripts.

`prompts/NAME.ulaw` (raw G.711 mu-law, no header) and `prompts/prompts.json` ({name: text}) ship
in the package; `make_prompts.sh` made them once with espeak-ng. `Prompts.wire(name, fmt)` is
the prompt in a session's output format: mu-law byte for byte, A-law transcoded, 24 kHz PCM16
through `dsp.resample` (computed once per format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsp.frame import RATE_HZ
from dsp.g711 import alaw_encode, ulaw_decode
from dsp.resample import resample
from gateway.realtime.audio import PCM_RATE_HZ, WireFormat, bytes_per_ms
from gateway.realtime.errors import RealtimeConfigError

PROMPTS_DIR = Path(__file__).with_name("prompts")
MAX_PROMPT_BYTES = 8000 * 60  # a minute of mu-law: anything longer is not a prompt file


@dataclass
class Prompts:
    """Prompt name -> mu-law bytes and transcript, from `directory`."""

    directory: Path = PROMPTS_DIR
    ulaw: dict[str, bytes] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    _wire: dict[tuple[str, WireFormat], bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> Prompts:
        prompts = cls(Path(directory) if directory is not None else PROMPTS_DIR)
        manifest = prompts.directory / "prompts.json"
        try:
            texts = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RealtimeConfigError(f"prompts: cannot read {manifest}: {exc}") from None
        if not isinstance(texts, dict) or not texts:
            raise RealtimeConfigError(f"{manifest}: want an object of name: transcript")
        for name, text in texts.items():
            path = prompts.directory / f"{name}.ulaw"
            if not path.is_file() or not 0 < path.stat().st_size <= MAX_PROMPT_BYTES:
                raise RealtimeConfigError(f"{manifest}: {name}: {path} is missing or not a "
                                          f"prompt (1 B - {MAX_PROMPT_BYTES} B)")  # fmt: skip
            prompts.ulaw[name] = path.read_bytes()
            prompts.text[name] = str(text)
        return prompts

    @property
    def names(self) -> list[str]:
        return list(self.ulaw)

    def wire(self, name: str, fmt: WireFormat) -> bytes:
        key = (name, fmt)
        if key not in self._wire:
            codes = np.frombuffer(self.ulaw[name], np.uint8)
            if fmt == "audio/pcmu":
                wire = self.ulaw[name]
            elif fmt == "audio/pcma":
                wire = alaw_encode(ulaw_decode(codes)).tobytes()
            else:
                wire = resample(ulaw_decode(codes), RATE_HZ, PCM_RATE_HZ).astype("<i2").tobytes()
            self._wire[key] = wire
        return self._wire[key]

    def duration_ms(self, name: str) -> int:
        return len(self.ulaw[name]) // bytes_per_ms("audio/pcmu")
