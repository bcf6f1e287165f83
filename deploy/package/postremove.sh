#!/bin/sh
# edgegw package: after the files are removed.
#   Debian postrm: "remove", "purge" (deletes /var/lib/edgegw), others
#   RPM %postun:   0 (erase) or 1 (upgrade); RPM never deletes the data
# The edgegw user stays (files it owned may remain, e.g. in backups).
set -e

if [ "$1" = purge ]; then
	# Purge means everything: the buffer (records never sent to DIS are lost)
	# and the built-in DIS server's data.
	rm -rf /var/lib/edgegw
	rmdir /etc/edgegw 2>/dev/null || true
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
exit 0
