"""Call-progress tone plans as data: what each network sends for dial, ringback, busy, reorder
and the special information tone (SIT), and how loud.

Owns `TonePlan`, `ToneSpec`, `SitSpec` and `PLANS`. `dsp.tones` reads them to generate tones
(`ToneGenerator`, `generate`) and to build its detector tables (`ToneDetector`); nothing here
runs per frame. Names are the detector's event names: a plan's congestion tone is "reorder".

Sources (figures checked against them; where a source is second-hand, the comment says so):
- us: the North American Precise Tone Plan (ITU-T E.300-series Suppl. 3, AT&T Notes on
  Distance Dialing 1968) for frequencies, levels and cadences; Telcordia (Bellcore) SIT
  encoding, as listed in vendor detector tables (segment 1: 913.8 or 985.2 Hz, segment 2:
  1370.6 or 1428.5 Hz, segment 3: 1776.7 Hz; each 274 ms "short" or 380 ms "long").
- uk: BT SIN 350 as transcribed in Asterisk's indications.conf ("official tones taken from
  BT SIN350"): dial tone is 350+440 Hz, not 350+450 Hz.
- de: ITU-T E.180 Suppl. 2, entry "Germany": busy 0.48/0.48 s, congestion 0.24/0.24 s,
  ringing 1.0 on 4.0 off, SIT 950/1400/1800 Hz 3 x 0.33 s then 1.0 s silence.
- etsi: the harmonised 425 Hz plan of ETSI TR 101 041 / ES 201 970, not read in the
  documents themselves: busy 0.5/0.5 s at -20 dBm is the ETSI value as quoted by Wikipedia
  ("Busy signal"); continuous dial tone, ringing 1 on 4 off and congestion 0.25/0.25 s are
  the 425 Hz values of the countries that follow it (E.180 Suppl. 2, Asterisk indications).
- SIT (all but us): ITU-T E.180 (as quoted by Wikipedia, "Special information tone"): 950,
  1400, 1800 Hz (each +-50 Hz), 330 +-70 ms per segment, gaps up to 30 ms, -24 dBm0.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsp.errors import DspInputError

TONE_NAMES = ("dial", "ringback", "busy", "reorder", "sit")
CADENCE_TOLERANCE = 0.15  # +-15 % on every on/off segment (plus frame slack in the
# detector): covers US reorder's historic 0.2/0.3 and 0.3/0.2 s variants of 0.25/0.25 s and
# DE 0.48 s vs ETSI 0.5 s busy; a vendor detector table (Blueworx) accepts US busy 400-580 ms.
UK_TOLERANCE = 0.10  # UK busy (0.375 s) and congestion (0.4/0.35/0.225/0.525 s) share
# 400 Hz; at +-15 % a busy joined mid-burst can read as congestion, at +-10 % it cannot
RINGBACK_TOLERANCE = 0.20  # ringing cadences vary most between exchanges and PBXs; a
# false ringback costs nothing, a missed one a retry.
E180_SIT_BAND_HZ = 50.0  # E.180: each SIT frequency +-50 Hz
SIT_LEVEL_DBM0 = -24.0  # E.180: nominal SIT level -24 dBm0 (+-1.5 dB)


@dataclass(frozen=True, slots=True)
class ToneSpec:
    """One call-progress tone: frequencies (Hz) with their send levels (dBm0 each) and a
    cadence of on/off segment durations (ms, starting with on) that repeats; () = continuous."""

    name: str
    freqs_hz: tuple[float, ...]
    levels_dbm0: tuple[float, ...]
    cadence_ms: tuple[int, ...] = ()
    tolerance: float = CADENCE_TOLERANCE


@dataclass(frozen=True, slots=True)
class SitSpec:
    """A special information tone: three single-frequency segments in rising order.

    `bands_hz[k]` lists the frequencies segment k may use (Telcordia encodes the failure
    reason in the choice); each is accepted within `band_tolerance_hz`. A segment lasts
    `segment_min_ms`..`segment_max_ms`. `send_hz`/`send_ms` is the variant `generate` plays,
    followed by `silence_ms` before it repeats.
    """

    bands_hz: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
    segment_min_ms: float
    segment_max_ms: float
    send_hz: tuple[float, float, float]
    send_ms: tuple[int, int, int]
    silence_ms: int
    level_dbm0: float = SIT_LEVEL_DBM0
    band_tolerance_hz: float = E180_SIT_BAND_HZ


@dataclass(frozen=True, slots=True)
class TonePlan:
    """The tones of one network. `tones` holds dial, ringback, busy and reorder."""

    name: str
    tones: tuple[ToneSpec, ...]
    sit: SitSpec

    def tone(self, name: str) -> ToneSpec:
        """The `ToneSpec` called `name` ("dial", "ringback", "busy" or "reorder")."""
        for spec in self.tones:
            if spec.name == name:
                return spec
        raise DspInputError(f"tone plan {self.name!r} has no tone {name!r}")


# E.180: 330 +-70 ms per segment; repeated after 1 s of silence (Suppl. 2, "Germany").
ITU_SIT = SitSpec(
    bands_hz=((950.0,), (1400.0,), (1800.0,)),
    segment_min_ms=260.0,
    segment_max_ms=400.0,
    send_hz=(950.0, 1400.0, 1800.0),
    send_ms=(330, 330, 330),
    silence_ms=1000,
)

# Telcordia: short 274 ms, long 380 ms; the vendor table accepts 220-460 ms. We play the
# "intercept" (IC) variant: low/short, low/short, low/long.
US_SIT = SitSpec(
    bands_hz=((913.8, 985.2), (1370.6, 1428.5), (1776.7,)),
    segment_min_ms=220.0,
    segment_max_ms=460.0,
    send_hz=(913.8, 1370.6, 1776.7),
    send_ms=(274, 274, 380),
    silence_ms=1000,
)

# Precise Tone Plan levels: dial -13 dBm0, audible ringing -19 dBm0, busy/reorder -24 dBm0
# per frequency. Reorder was 0.2/0.3 s (toll) or 0.3/0.2 s (local) before 0.25/0.25 s.
US = TonePlan(
    name="us",
    tones=(
        ToneSpec("dial", (350.0, 440.0), (-13.0, -13.0)),
        ToneSpec("ringback", (440.0, 480.0), (-19.0, -19.0), (2000, 4000), RINGBACK_TOLERANCE),
        ToneSpec("busy", (480.0, 620.0), (-24.0, -24.0), (500, 500)),
        ToneSpec("reorder", (480.0, 620.0), (-24.0, -24.0), (250, 250)),
    ),
    sit=US_SIT,
)

# SIN 350 levels were not at hand: second-hand sources give -14..-25 dBm per component;
# -20 dBm0 per frequency sits in the middle.
UK = TonePlan(
    name="uk",
    tones=(
        ToneSpec("dial", (350.0, 440.0), (-20.0, -20.0)),
        ToneSpec(
            "ringback", (400.0, 450.0), (-20.0, -20.0), (400, 200, 400, 2000), RINGBACK_TOLERANCE
        ),
        ToneSpec("busy", (400.0,), (-20.0,), (375, 375), UK_TOLERANCE),
        ToneSpec("reorder", (400.0,), (-20.0,), (400, 350, 225, 525), UK_TOLERANCE),  # "congestion"
    ),
    sit=ITU_SIT,
)

# Single 425 Hz tones at -20 dBm0, the level quoted for the ETSI busy tone (second-hand;
# the detector accepts -46..0 dBm0 per frequency, so a network's exact level does not matter).
DE = TonePlan(
    name="de",
    tones=(
        ToneSpec("dial", (425.0,), (-20.0,)),
        ToneSpec("ringback", (425.0,), (-20.0,), (1000, 4000), RINGBACK_TOLERANCE),
        ToneSpec("busy", (425.0,), (-20.0,), (480, 480)),
        ToneSpec("reorder", (425.0,), (-20.0,), (240, 240)),  # "Gassenbesetztton"
    ),
    sit=ITU_SIT,
)

ETSI = TonePlan(
    name="etsi",
    tones=(
        ToneSpec("dial", (425.0,), (-20.0,)),
        ToneSpec("ringback", (425.0,), (-20.0,), (1000, 4000), RINGBACK_TOLERANCE),
        ToneSpec("busy", (425.0,), (-20.0,), (500, 500)),
        ToneSpec("reorder", (425.0,), (-20.0,), (250, 250)),  # "congestion"
    ),
    sit=ITU_SIT,
)

PLANS: dict[str, TonePlan] = {p.name: p for p in (US, UK, DE, ETSI)}


def get_plan(plan: str | TonePlan) -> TonePlan:
    """A plan by name ("us", "uk", "de", "etsi"), or `plan` itself if it already is one."""
    if isinstance(plan, TonePlan):
        return plan
    try:
        return PLANS[plan]
    except KeyError:
        names = ", ".join(PLANS)
        raise DspInputError(f"unknown tone plan {plan!r}: expected one of {names}") from None
