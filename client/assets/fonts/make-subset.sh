#!/usr/bin/env bash
# Rebuilds NotoSansSC-GB2312-subset.otf, the Chinese font the desktop app embeds, from Debian's Noto Sans CJK.
#
# Why a subset: the full Noto Sans CJK collection is about 20 MB per weight because it covers Chinese, Japanese
# and Korean in five regional styles. The app needs Simplified Chinese only, and GB2312 (the 1980 mainland
# standard, 6 763 hanzi) covers the characters of almost all everyday Simplified Chinese text, so keeping those
# glyphs from the SC face gives a font of about 1.6 MB that the binary can carry.
#
# Needs: apt-get install -y fonts-noto-cjk; pip install fonttools
# Run from anywhere: bash client/assets/fonts/make-subset.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
source_font=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
# The .ttc collection holds several faces; this index is "Noto Sans CJK SC", checked below before subsetting.
face_index=2
out="$here/NotoSansSC-GB2312-subset.otf"
unicodes="$(mktemp)"
trap 'rm -f "$unicodes"' EXIT

python3 - "$source_font" "$face_index" <<'PY'
import sys
from fontTools.ttLib import TTFont
font = TTFont(sys.argv[1], fontNumber=int(sys.argv[2]), lazy=True)
family = font["name"].getDebugName(4)
if family != "Noto Sans CJK SC":
    sys.exit(f"face {sys.argv[2]} is {family!r}, expected 'Noto Sans CJK SC'")
PY

python3 - > "$unicodes" <<'PY'
# Code points to keep, one hex number a line (pyftsubset's --unicodes-file format).
points = set(range(0x20, 0x7F))            # printable ASCII
points |= set(range(0xA0, 0x100))          # Latin-1 (·, ×, é in names of places)
points |= set(range(0x2000, 0x2070))       # general punctuation: “ ” ‘ ’ … — and friends
points |= set(range(0x3000, 0x3040))       # CJK symbols and punctuation: 、。「」《》
points |= set(range(0xFF00, 0xFFF0))       # full-width and half-width forms: ，！？（）
# Every character of GB2312: rows 0xA1..0xF7, cells 0xA1..0xFE of the EUC-CN encoding. Rows 1-9 are symbols,
# rows 16-87 the hanzi; unassigned codes do not decode and are skipped.
for hi in range(0xA1, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            text = bytes([hi, lo]).decode("gb2312")
        except UnicodeDecodeError:
            continue
        points.update(ord(ch) for ch in text)
for point in sorted(points):
    print(f"{point:04X}")
PY

# --layout-features='': egui lays out text one glyph per character and never applies OpenType substitutions, and
# the substitution tables are what pull in the Japanese, Korean and Traditional variants of each glyph; dropping
# them halves the file. --no-hinting: egui's rasteriser ignores hints. --name-IDs='*' keeps the copyright and
# licence records in the font itself.
pyftsubset "$source_font" --font-number="$face_index" --unicodes-file="$unicodes" \
    --layout-features='' --no-hinting --name-IDs='*' --output-file="$out"
ls -l "$out"
