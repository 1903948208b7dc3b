// Package installer will hold the agent's service installation and
// packaging (see the install issue). For now it holds devrun/run.sh, the
// script behind `make run`.
package installer
