// Package release holds the acceptance tests of edgegw's release artifacts
// (issue 8); it has no code of its own.
//
// The tests run the Makefile's release targets (make packages, make dist-check,
// make image-rootfs) into temporary directories and check what they produce:
// static, stripped, stamped binaries within the size budget, run natively and
// under qemu user-mode emulation (arm64, ARMv7, ARMv6) through a real publish
// and read-back; the .deb installed, upgraded and removed in a throwaway Debian
// root, first in a chroot and then booted with systemd-nspawn so the hardened
// unit runs under a real systemd; the .rpm's metadata; the container image's
// file tree run as its non-root user in a chroot; the Kubernetes example
// against the image and the config; and a buffer written by the previous
// release drained by this build.
//
// They need root and Debian tools (.ci/run installs them); without them a test
// skips, or fails when EDGEGW_REQUIRE_TOOLS is set, as in CI.
package release
