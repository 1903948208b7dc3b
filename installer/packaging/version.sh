#!/bin/sh
# version.sh [--msi] VERSION: turns the Makefile's VERSION (git describe
# --tags --always --dirty) into a package version.
#
# Without --msi, a version valid for dpkg and rpm, that sorts the way the
# builds were made (~ sorts before the release, + after it):
#   v1.2.3                -> 1.2.3
#   v1.2.3-rc1            -> 1.2.3~rc1
#   v1.2.3-4-gabc1234     -> 1.2.3+git4.abc1234
#   v1.2.3-4-gabc1234-dirty -> 1.2.3+git4.abc1234.dirty
#   abc1234-dirty (no tag)  -> 0.0.0~gitabc1234.dirty
#   dev (no git)            -> 0.0.0~dev
# With --msi, the MSI ProductVersion, major.minor.build numbers only (Windows
# Installer compares the first three fields): 1.2.3 for all the v1.2.3 forms
# above, 0.0.0 without a tag.
set -eu

msi=
if [ "${1:-}" = --msi ]; then
	msi=1
	shift
fi
v=${1:?usage: version.sh [--msi] VERSION}

# git describe --always without a tag: an abbreviated hash, which may be all
# digits.
if printf '%s\n' "$v" | grep -Eq '^[0-9a-f]{7,40}(-dirty)?$'; then
	if [ -n "$msi" ]; then
		echo 0.0.0
	else
		echo "0.0.0~git$(printf '%s\n' "$v" | tr - .)"
	fi
	exit 0
fi
v=${v#v}

# The numeric head (1.2.3) and the rest (-4-gabc1234-dirty).
base=$(printf '%s\n' "$v" | sed -n 's/^\([0-9][0-9]*\(\.[0-9][0-9]*\)*\).*/\1/p')
rest=${v#"$base"}

if [ -n "$msi" ]; then
	[ -n "$base" ] || base=0
	printf '%s\n' "$base.0.0" | awk -F. '{
		a = $1 > 255 ? 255 : $1; b = $2 > 255 ? 255 : $2; c = $3 > 65535 ? 65535 : $3
		printf "%d.%d.%d\n", a, b, c
	}'
	exit 0
fi

# Anything but letters and digits becomes a dot.
clean() { printf '%s\n' "$1" | sed 's/[^A-Za-z0-9]\{1,\}/./g; s/^\.//; s/\.$//'; }

if [ -z "$base" ]; then
	echo "0.0.0~$(clean "$v")"
elif [ -z "$rest" ]; then
	echo "$base"
elif printf '%s\n' "$rest" | grep -Eq '^-[0-9]+-g[0-9a-f]+(-dirty)?$'; then
	echo "$base+git$(clean "${rest#-}" | sed 's/^\([0-9]*\)\.g/\1./')"
else
	echo "$base~$(clean "$rest")"
fi
