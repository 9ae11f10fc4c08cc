// Package uitest tests the web UI in a real browser: its tests build and
// start the pxperf binary, publish entries over gRPC, and drive Chromium
// through the DevTools protocol (chromedp) against the page the gateway
// serves. BenchmarkFollow measures the page while it follows a busy store,
// BenchmarkJump the time a jump to a random offset takes to render.
//
// The tests need a Chromium: PXPERF_CHROMIUM names one, else chromium,
// chromium-browser or google-chrome on PATH; without one they skip and say
// so. .ci/run installs Debian's chromium when it is missing. Screenshots go
// to each test's temporary directory, and to the directory
// PXPERF_UI_SCREENSHOTS names when it is set (README shows its detail.png,
// copied to web/screenshot.png).
//
// There is no non-test code here.
package uitest
