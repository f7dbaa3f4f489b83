#!/bin/sh
# Makes endpoint/media/assets/clip.h264, the clip the `clip` video source loops when ffmpeg is absent.
# Same encoder settings as the `test` source (endpoint/media/ffmpeg-args.ts), so a decoder configured for one
# decodes the other: constrained baseline (WebCodecs decodes it everywhere), no B-frames, an access unit
# delimiter before every picture (the parser splits on them), an IDR with SPS/PPS every 30 frames.
# 320x240, 30 fps, 2 s = 60 frames, about 75 KB at 300 kbit/s.
set -eu
out="${1:-$(dirname "$0")/../endpoint/media/assets/clip.h264}"
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=320x240:rate=30" -t 2 \
  -c:v libx264 -preset ultrafast -tune zerolatency -profile:v baseline -pix_fmt yuv420p \
  -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 \
  -b:v 300k -maxrate 300k -bufsize 100k \
  -x264-params aud=1 \
  -f h264 "$out"
echo "wrote $out ($(wc -c <"$out") bytes)"
