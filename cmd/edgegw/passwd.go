package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// maxPasswordLen is bcrypt's limit: it reads only the first 72 bytes, so a
// longer password would be silently cut.
const maxPasswordLen = 72

// cmdPasswd reads a password and prints its bcrypt hash for mqtt.users[].password_hash.
// On a terminal it prompts twice without echo; otherwise it reads the first
// line of stdin (echo pw | edgegw passwd, or edgegw passwd < file).
func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("passwd", "edgegw passwd [-cost N]   (password from stdin, or prompted on a terminal)", stderr)
	// bcrypt.DefaultCost (10): about 70 ms per check on a small ARM core, and
	// the broker remembers a verified password, so reconnects do not pay it.
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d; each step doubles the work", bcrypt.MinCost, bcrypt.MaxCost))
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("edgegw passwd takes no arguments; it reads the password from stdin (never from the command line, where ps would show it)")
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return usagef("-cost %d is out of range; use %d to %d", *cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		return fmt.Errorf("hash the password: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", hash)
	return nil
}

func readPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	var pw []byte
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(stderr, "Password: ")
		first, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read the password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("read the password: %w", err)
		}
		if !bytes.Equal(first, again) {
			return nil, usagef("the two passwords differ; nothing was printed")
		}
		pw = first
	} else {
		line, err := bufio.NewReaderSize(io.LimitReader(stdin, 4096), 4096).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read the password from stdin: %w", err)
		}
		pw = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	}
	switch {
	case len(pw) == 0:
		return nil, usagef("the password is empty; give one on stdin (echo 'pw' | edgegw passwd) or at the prompt")
	case len(pw) > maxPasswordLen:
		return nil, usagef("the password is %d bytes; bcrypt uses at most %d", len(pw), maxPasswordLen)
	}
	return pw, nil
}
