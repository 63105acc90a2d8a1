#!/usr/bin/env bash
# Regenerates the local realtime server's spoken prompts in prompts/ (run once; the files are
# committed, so neither tests nor the appliance need espeak-ng). Needs espeak-ng and sox
# (Debian: apt-get install espeak-ng sox). Each prompt is raw G.711 mu-law at 8 kHz (what the
# server streams as `audio/pcmu`, byte for byte), band-limited to the telephone band, peak
# normalised like tests/data/make_speech.sh; prompts.json maps each name to its transcript.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p prompts
manifest=()
say() {  # name text
    local name=$1 text=$2 tmp
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v en-us+f3 -s 165 -p 55 -w "$tmp" "$text"
    sox "$tmp" -r 8000 -c 1 -e mu-law -t ul "prompts/$name.ulaw" \
        gain -6 highpass 200 lowpass 3400 norm -17
    rm -f "$tmp"
    manifest+=("  \"$name\": \"$text\"")
}
say greeting      "Hello, thanks for calling. How can I help you today?"
say one_moment    "Let me look that up for you. One moment, please."
say order_shipped "Your order shipped yesterday. It should arrive on Thursday."
say booked        "You're all set: a table for four on Friday at seven thirty."
say anything_else "Is there anything else I can help you with?"
say sorry         "Sorry, I didn't catch that. Could you say it again?"
say goodbye       "Thank you for calling. Goodbye!"
{
    echo "{"
    (IFS=$'\n'; echo "${manifest[*]}" | sed '$!s/$/,/')
    echo "}"
} > prompts/prompts.json
ls -l prompts
