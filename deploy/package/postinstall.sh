#!/bin/sh
# edgegw package: after the files are unpacked.
#   Debian postinst: "configure" [previously configured version] (others: nothing to do)
#   RPM %post:       1 (install) or 2 (upgrade)
# It must work in a chroot or an image build (no running systemd): then it only
# creates the user and enables the unit; the service starts at the next boot.
set -e

case "$1" in
configure) if [ -n "$2" ]; then upgrade=1; else upgrade=0; fi ;;
1) upgrade=0 ;;
2) upgrade=1 ;;
*) exit 0 ;;
esac

if ! getent group edgegw >/dev/null; then
	groupadd --system edgegw
fi
if ! getent passwd edgegw >/dev/null; then
	useradd --system --gid edgegw --home-dir /var/lib/edgegw --no-create-home \
		--shell /usr/sbin/nologin --comment "edgegw MQTT gateway" edgegw
fi
# The buffer and the built-in DIS data. Never emptied here: an upgrade drains
# what the previous version left in the buffer.
install -d -o edgegw -g edgegw -m 0750 /var/lib/edgegw
# The service reads its config as group edgegw; other users cannot.
if [ -f /etc/edgegw/edgegw.yaml ]; then
	chgrp edgegw /etc/edgegw/edgegw.yaml
	chmod 0640 /etc/edgegw/edgegw.yaml
fi

command -v systemctl >/dev/null 2>&1 || exit 0
# Enable on first install only, so "systemctl disable edgegw" survives upgrades.
# systemctl enable edits symlinks and works without a running systemd.
if [ "$upgrade" = 0 ]; then
	systemctl enable edgegw.service
fi
[ -d /run/systemd/system ] || exit 0
systemctl daemon-reload
if [ "$upgrade" = 1 ]; then
	# Restart after the upgrade: the old version flushes and stops, the new one
	# opens the same buffer. Only if it was running.
	systemctl try-restart edgegw.service || echo "edgegw: restart failed; see journalctl -u edgegw" >&2
else
	systemctl start edgegw.service || echo "edgegw: did not start; see journalctl -u edgegw, fix /etc/edgegw/edgegw.yaml, then systemctl restart edgegw" >&2
fi
exit 0
