#!/bin/sh
# edgegw package: before the files are removed.
#   Debian prerm: "remove" (others, e.g. "upgrade": nothing to do; the new
#                 version's postinst restarts the service)
#   RPM %preun:   0 (erase) or 1 (upgrade)
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

command -v systemctl >/dev/null 2>&1 || exit 0
if [ -d /run/systemd/system ]; then
	# A graceful stop: the uplink flushes, the rest stays in /var/lib/edgegw.
	systemctl stop edgegw.service || true
fi
systemctl disable edgegw.service || true
exit 0
