#!/usr/bin/env bash
# Regenerates the simulated caller's utterances in this directory (run once; the files are
# committed, so neither the demo nor the tests need espeak-ng). Needs espeak-ng and sox
# (Debian: apt-get install espeak-ng sox). Made like the local realtime server's prompts
# (gateway/realtime/local/make_prompts.sh: raw 8 kHz mu-law, telephone band, peak -17 dBFS)
# but in a male voice, so that the two sides of a recorded demo call are told apart by ear;
# caller.json maps each name to its words.
set -euo pipefail
cd "$(dirname "$0")"
manifest=()
say() {  # name text
    local name=$1 text=$2 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v en-us+m3 -s 175 -p 35 -w "$tmp" "$text"
    sox "$tmp" -r 8000 -c 1 -e mu-law -t ul "$name.ulaw" \
        gain -6 highpass 200 lowpass 3400 norm -17
    rm -f "$tmp"
    manifest+=("  \"$name\": \"$text\"")
}
say request      "Hi, where is my order? It's four five nine two."
say interruption "Oh great, thanks!"
{
    echo "{"
    (IFS=$'\n'; echo "${manifest[*]}" | sed '$!s/$/,/')
    echo "}"
} > caller.json
ls -l ./*.ulaw
