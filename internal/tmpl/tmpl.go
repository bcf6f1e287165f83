// Package tmpl splits the gateway's string templates — partition keys
// ("{topic.2}") and downlink topics ("devices/{partition_key}/commands") —
// into literal text and {name} placeholders. "{{" and "}}" stand for literal
// braces. What a placeholder name means is the caller's business.
package tmpl

import (
	"fmt"
	"strings"
)

// Split walks template s in order, calling literal for each run of literal
// text (never empty, braces unescaped) and placeholder for each {name}. The
// first error — a stray or unclosed brace, or one placeholder returns — ends
// the walk and is returned.
func Split(s string, literal func(string) error, placeholder func(name string) error) error {
	var lit strings.Builder
	flush := func() error {
		if lit.Len() == 0 {
			return nil
		}
		err := literal(lit.String())
		lit.Reset()
		return err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return fmt.Errorf("unmatched \"}\" at byte %d; write \"}}\" for a literal brace", i)
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return fmt.Errorf("\"{\" at byte %d is never closed; write \"{{\" for a literal brace", i)
			}
			if err := flush(); err != nil {
				return err
			}
			if err := placeholder(s[i+1 : i+1+end]); err != nil {
				return err
			}
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	return flush()
}
