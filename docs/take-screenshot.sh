#!/usr/bin/env bash
# Takes docs/screenshot.png from a real window: a real chatlab server on 127.0.0.1:7979, the desktop app under Xvfb
# signed in as ann with 10 % of its own datagrams lost (--loss 10 --seed 7), classmates chatting through chatlab-cli,
# and ann typing through xdotool so the statistics panel shows retransmissions.
#
# Needs: apt-get install xvfb xdotool x11-apps imagemagick libxkbcommon-x11-0, and
#        cargo build --release -p chatlab-client -p chatlab-server --bins
# Usage: docs/take-screenshot.sh   (writes docs/screenshot.png; everything else stays in a temporary folder)
set -u
cd "$(dirname "$0")/.."
B="${CARGO_TARGET_DIR:-target}/release"
OUT="$PWD/docs/screenshot.png"
W=$(mktemp -d); mkdir -p $W/home
export HOME=$W/home XDG_CONFIG_HOME=$W/home/.config XDG_DATA_HOME=$W/home/.local/share
export CHATLAB_SERVER=127.0.0.1:7979
$B/chatlab-server --listen 127.0.0.1:7979 --data $W/data > $W/server.log 2>&1 &
SERVER=$!
sleep 1
for u in ann bob li.lei han.meimei; do CHATLAB_PASSWORD="pw-$u-123456" $B/chatlab-cli --user $u register >/dev/null 2>&1; done
say() { CHATLAB_PASSWORD="pw-$1-123456" $B/chatlab-cli --user "$1" send "$2" "$3" >/dev/null; }
say bob world "Morning! Is everyone on the lab server?"
say li.lei world "在的！今天比较 UDP 和 TCP 的重传。"
say han.meimei world "我把丢包率设成 10%，种子 7。"
(CHATLAB_PASSWORD="pw-bob-123456" $B/chatlab-cli --user bob listen > $W/bob.log 2>&1 &)
(CHATLAB_PASSWORD="pw-li.lei-123456" $B/chatlab-cli --user li.lei listen > $W/lilei.log 2>&1 &)
Xvfb :99 -screen 0 1400x1050x24 > $W/xvfb.log 2>&1 &
XVFB=$!
sleep 1
export DISPLAY=:99 LIBGL_ALWAYS_SOFTWARE=1
CHATLAB_PASSWORD="pw-ann-123456" $B/chatlab --user ann --stats --loss 10 --seed 7 --lang en > $W/app.log 2>&1 &
APP=$!
sleep 4
WIN=$(xdotool search --name chatlab | head -1)
xdotool windowmove $WIN 0 0 windowsize $WIN 1400 1050
sleep 2
type_line() { xdotool windowfocus --sync $WIN; xdotool mousemove 400 990 click 1; sleep 0.3; xdotool type --delay 20 "$1"; xdotool key Return; sleep 1; }
type_line "Hi all, signed in from the desktop app with 10 % loss."
say bob world "Watch the retransmission counter while you type."
for i in 1 2 3 4 5 6 7 8; do type_line "Message $i through the lossy path"; done
say li.lei world "第 1 轮：SRTT 大约是延迟滑块的两倍。"
say bob ann "Send me your CSV export after class?"
for i in 9 10 11 12 13 14; do type_line "Message $i through the lossy path"; done
xdotool mousemove 700 500
sleep 3
xwd -root -silent -display :99 | convert xwd:- "$OUT"
kill $APP; sleep 1; kill $SERVER $XVFB; pkill -f "chatlab-cli --user"; rm -rf "$W"
echo "wrote $OUT"
