// Package endpoint holds what the two ends of the tunnel share as running
// processes: strict YAML configuration loading (an unknown key is an error
// naming the key and the file), the loopback operations server (/readyz,
// /healthz, /metrics, /status) and log setup.
package endpoint
