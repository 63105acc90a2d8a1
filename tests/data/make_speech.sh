#!/usr/bin/env bash
# Regenerates the speech clips in tests/data/speech/ (run once; the clips are committed).
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox). Each clip is 8 kHz,
# 16-bit mono WAV, band-limited to the telephone band, normalised to about -20 dBm0 RMS.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p speech
say() {  # name voice speed pitch text
    local name=$1 voice=$2 speed=$3 pitch=$4 text=$5 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp" "$text"
    sox "$tmp" -r 8000 -b 16 -c 1 "speech/$name.wav" gain -6 highpass 200 lowpass 3400 trim 0 5.5 fade t 0 -0 0.05 norm -17
    rm -f "$tmp"
}
say en_us_male   en-us         150 40 "Hello, thank you for calling. I would like to book a table for four people on Friday evening, around seven thirty if you have anything free."
say en_us_female en-us+f3      160 60 "Hi there, could you please tell me whether my order has shipped yet? The number is four five nine two, and I placed it last Tuesday."
say en_gb_male   en-gb+m3      140 35 "Good morning. I'm ringing about the boiler repair. The engineer was meant to come at nine o'clock, but nobody has arrived so far."
say de_female    de+f2         150 55 "Guten Tag, ich möchte gerne einen Termin für nächste Woche vereinbaren. Passt Ihnen Mittwoch Vormittag um zehn Uhr?"
say fr_male      fr+m1         150 45 "Bonjour, je voudrais savoir si le magasin est ouvert dimanche, et à quelle heure vous fermez ce soir."
say es_female    es+f4         160 65 "Buenas tardes, llamo para cambiar mi reserva. Necesito una habitación doble desde el lunes hasta el jueves."
ls -l speech
