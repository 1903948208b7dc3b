// Package devrun is `make run`: run.sh starts, on this machine with embedded
// defaults, a relay with its own dev CA and store, the SharePoint emulator
// and an agent enrolled through a one-time token, waits for the crawl over
// the tunnel and prints a ready curl for POST /v1/dispatch. The package holds
// only its smoke test (devrun_test.go); the environment variables of run.sh
// are documented at its top.
package devrun
