// Package packaging is what `make package` builds the installable packages
// from, and the tests of those packages. It has no Go code of its own:
//
//   - nfpm.yaml and nfpm-relay.yaml: the .deb and .rpm of the agent and of
//     the relay, built with nfpm;
//   - scripts/: their maintainer scripts (POSIX sh, deb and rpm arguments);
//   - agent.yaml: the agent's configuration template, shipped as
//     /usr/share/mcc-bridge-agent/agent.yaml and copied by postinstall to
//     /etc/mcc-bridge/agent.yaml when that is missing (not a conffile:
//     bridge-agent install edits it);
//   - windows/bridge-agent.wxs: the agent's Windows installer, built with wixl;
//   - version.sh: package versions from `git describe`;
//   - package.sh: the build, with Authenticode signing of the Windows files.
//
// The relay's systemd unit and example configuration are in
// installer/relay; the agent's unit is installer/service's.
package packaging
