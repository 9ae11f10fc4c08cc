// Package deploy holds pxperf's Grafana dashboard (grafana/pxperf.json)
// and Prometheus alert rules (prometheus/pxperf-alerts.yml), and the tests
// that hold them to what the server exports: every expression must name a
// metric that /metrics shows, and each alert rule must fire on series
// where the monitor's alert of the same name fires and stay quiet where it
// does not.
//
// It is a module of its own so that pxperf's root module, and everyone who
// imports pxperf's client, does not depend on Prometheus's server code;
// deploy/ci.sh runs its checks.
package deploy
