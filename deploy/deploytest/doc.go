// Package deploytest checks the files in deploy/ against the code: the
// Prometheus rule files parse, every metric and label their PromQL names is
// one Ripple exports (or a series the rules record), the routes the SLOs
// select are the routes the API serves, and the Grafana dashboards are valid
// and query only real series. Rename a metric and these tests fail until
// deploy/ follows. The package has no code of its own, only tests.
package deploytest
