#!/usr/bin/env bash
# Check the HTML report of python/report/make_report.py in a real headless browser, then save
# a screenshot of its first screen:
#
#   scripts/check-report.sh REPORT_HTML OUT_PNG
#
# Loads the page in Debian's chromium (chromium or chromium-browser on PATH), dumps the DOM once
# the page's load script has run, and reads the attributes that script sets on <body>:
# data-images (number of <img>), data-images-loaded (decoded ones) and data-errors (errors the
# page caught). Passes when there is at least one image, all of them loaded and no error; prints
# "report.html: N of N images loaded, 0 errors". Then writes a 1280x900 screenshot to OUT_PNG.
# Exit 0 when both pass, 1 when a check fails (the message says which), 2 for bad usage or no
# browser. --no-sandbox is there because the browser's sandbox refuses to run as root;
# --disable-dev-shm-usage because a container's /dev/shm (64 MiB) is too small for it.
set -euo pipefail

usage() {
  echo "usage: scripts/check-report.sh REPORT_HTML OUT_PNG" >&2
  exit 2
}

fail() {
  echo "check-report: $*" >&2
  exit 1
}

find_browser() {
  local name
  for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null; then
      command -v "$name"
      return
    fi
  done
  echo "check-report: no chromium or chromium-browser on PATH (apt-get install chromium)" >&2
  exit 2
}

# The value of attribute $2 in the tag $1, empty when absent.
attribute() {
  sed -n "s/.* $2=\"\\([0-9]*\\)\".*/\\1/p" <<<"$1"
}

[[ $# -eq 2 ]] || usage
report=$1
out_png=$2
[[ -f $report ]] || { echo "check-report: $report: no such file" >&2; exit 2; }

browser=$(find_browser)
profile=$(mktemp -d)
log=$profile.log
trap 'rm -rf "$profile" "$log"' EXIT
url="file://$(realpath "$report")"
flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$profile"
       --virtual-time-budget=5000)

# 1. The DOM after load: the <body> tag carries what the page's load script recorded.
dom=$(timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" 2>"$log") \
  || { cat "$log" >&2; fail "$browser could not load $url"; }
body=$(grep -o '<body[^>]*>' <<<"$dom" | head -n 1) || fail "no <body> in the DOM of $report"
images=$(attribute "$body" data-images)
loaded=$(attribute "$body" data-images-loaded)
errors=$(attribute "$body" data-errors)
[[ -n $images && -n $loaded && -n $errors ]] \
  || fail "<body> lacks data-images/data-images-loaded/data-errors: the page's load script did not run"
echo "$(basename "$report"): $loaded of $images images loaded, $errors errors"
((images > 0)) || fail "the page has no image"
((loaded == images)) || fail "$((images - loaded)) of $images images did not load"
((errors == 0)) || fail "the page reported $errors errors"

# 2. A screenshot of the first screen. Headless chromium lays the page out in a window that keeps
# room for its (invisible) toolbar, so the viewport is ~140 px shorter than --window-size and the
# bottom of the screenshot is often left blank; --kiosk with a screen of the same size makes the
# viewport the full 1280x900.
rm -f "$out_png"
timeout 120 "$browser" "${flags[@]}" --hide-scrollbars --kiosk --screen-info='{1280x900}' --window-size=1280,900 \
  --screenshot="$(realpath -m "$out_png")" "$url" 2>"$log" \
  || { cat "$log" >&2; fail "$browser could not take the screenshot"; }
[[ -s $out_png ]] || { cat "$log" >&2; fail "no screenshot written to $out_png"; }
echo "screenshot: $out_png"
