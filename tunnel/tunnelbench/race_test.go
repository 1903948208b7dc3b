//go:build race

package tunnelbench

const raceEnabled = true
