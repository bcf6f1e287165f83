package buffer

// IsOpen reports whether the buffer accepts appends: true from Open until
// Close (a ReadOnly buffer is open but refuses appends). Safe from any goroutine.
func (b *Buffer) IsOpen() bool {
	b.sendMu.RLock()
	defer b.sendMu.RUnlock()
	return !b.closed
}
