package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// openPTY returns both sides of a new pseudo-terminal.
func openPTY(t *testing.T) (leader, follower *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

// waitEchoOff waits (at most 10 s) until the terminal no longer echoes:
// the prompt is printed just before term.ReadPassword turns echo off, and
// a person typing in between would see the password echoed.
func waitEchoOff(fd int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil || st.Lflag&unix.ECHO == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// On a terminal the password is asked twice, not echoed, and must match.
func TestPasswdPromptsOnATerminal(t *testing.T) {
	for _, tc := range []struct {
		first, again string
		wantOK       bool
	}{
		{"s3cret", "s3cret", true},
		{"s3cret", "other", false},
	} {
		leader, tty := openPTY(t)
		ttyFd := int(tty.Fd()) // read before the goroutine: Close writes the File
		var echoed bytes.Buffer
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the person at the terminal: reads the screen, types after each prompt
			defer wg.Done()
			buf := make([]byte, 256)
			typed := 0
			for {
				n, err := leader.Read(buf)
				echoed.Write(buf[:n])
				if err != nil {
					return
				}
				if typed == 0 && strings.Contains(echoed.String(), "Password: ") {
					waitEchoOff(ttyFd)
					leader.Write([]byte(tc.first + "\r"))
					typed++
				}
				if typed == 1 && strings.Contains(echoed.String(), "Again: ") {
					waitEchoOff(ttyFd)
					leader.Write([]byte(tc.again + "\r"))
					typed++
				}
			}
		}()
		var out bytes.Buffer
		err := cmdPasswd([]string{"-cost", "4"}, tty, &out, tty)
		tty.Close()
		leader.Close()
		wg.Wait()
		if !tc.wantOK {
			if err == nil || !strings.Contains(err.Error(), "differ") {
				t.Fatalf("mismatched passwords: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bcrypt.CompareHashAndPassword(bytes.TrimSpace(out.Bytes()), []byte("s3cret")) != nil {
			t.Fatalf("printed %q", out.String())
		}
		if strings.Contains(echoed.String(), "s3cret") || !strings.Contains(echoed.String(), "Password: ") || !strings.Contains(echoed.String(), "Again: ") {
			t.Fatalf("terminal showed %q: want both prompts and no echo", echoed.String())
		}
	}
}
