package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileIsTerminal asks the terminal driver: only a tty has termios settings.
func fileIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
