//go:build !linux

package main

import "os"

// fileIsTerminal approximates: a character device (a tty, or /dev/null).
func fileIsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
