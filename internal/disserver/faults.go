package disserver

import (
	"net/http"

	"github.com/edgegw/edgegw/internal/dis"
)

// tokenBucket is a classic token bucket on an explicit millisecond clock, so
// tests drive it with an injected clock. Not safe for concurrent use.
type tokenBucket struct {
	rate, capacity, tokens float64
	last                   int64 // epoch ms of the last refill
}

func newTokenBucket(rate, capacity float64) *tokenBucket {
	return &tokenBucket{rate: rate, capacity: capacity, tokens: capacity, last: -1}
}

func (b *tokenBucket) refill(now int64) {
	if b.last >= 0 && now > b.last {
		b.tokens = min(b.capacity, b.tokens+b.rate*float64(now-b.last)/1000)
	}
	if now > b.last {
		b.last = now
	}
}

// take removes n tokens if there are that many.
func (b *tokenBucket) take(now int64, n float64) bool {
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// admit applies the partition's write limit to one record: one second of
// records and bytes may burst. The byte bucket holds at least one maximal
// record, or a 1 MiB record could never pass a 1 MB/s limit. Writer
// goroutine only.
func (p *partition) admit(l RateLimit, size int, now int64, maxRecord int) bool {
	if p.bucket == nil {
		p.bucket = newTokenBucket(float64(l.BytesPerSecond), float64(max(l.BytesPerSecond, maxRecord)))
		p.recBucket = newTokenBucket(float64(l.RecordsPerSecond), float64(l.RecordsPerSecond))
	}
	p.bucket.refill(now)
	p.recBucket.refill(now)
	if p.bucket.tokens < float64(size) || p.recBucket.tokens < 1 {
		return false
	}
	p.bucket.tokens -= float64(size)
	p.recBucket.tokens--
	return true
}

// SetFaults replaces the fault-injection settings at runtime and restarts
// their counters; the outage window is measured from this call. Safe for
// concurrent use.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(""); err != nil {
		return err
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
	s.faultBase = s.now()
	s.putRequests = 0
	s.resetRecordCounter = true
	return nil
}

// Faults returns the fault-injection settings in force.
func (s *Server) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// currentFaults returns the settings for the writer, restarting its record
// counter after SetFaults. Writer goroutine only.
func (s *Server) currentFaults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.resetRecordCounter {
		s.recordCounter = 0
		s.resetRecordCounter = false
	}
	return s.faults
}

// inOutage reports whether the outage window is open now.
func (s *Server) inOutage() bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	if f.OutageDuration <= 0 {
		return false
	}
	since := s.now().Sub(s.faultBase)
	return since >= f.OutageStart && since < f.OutageStart+f.OutageDuration
}

// rejectPut applies fault injection's every-Mth-request 429 to a PutRecords
// request (the request rate limit applies to every request, in serve).
func (s *Server) rejectPut() *dis.Error {
	s.faultMu.Lock()
	s.putRequests++
	n := s.putRequests
	every := s.faults.RejectEveryNthRequest
	s.faultMu.Unlock()
	if every > 0 && n%uint64(every) == 0 {
		return errTooManyRequests("fault injection: every %dth request is rejected", every)
	}
	return nil
}

// limitRequest applies flow_control.requests_per_second to a project.
func (s *Server) limitRequest(p *project) *dis.Error {
	if p == nil || p.limiter == nil {
		return nil
	}
	p.limMu.Lock()
	ok := p.limiter.take(ms(s.now()), 1)
	p.limMu.Unlock()
	if !ok {
		return errTooManyRequests("project %s is limited to %d requests/s", p.id, s.cfg.FlowControl.RequestsPerSecond)
	}
	return nil
}

// errTooManyRequests is the request-level throttle: HTTP 429, which the SDKs
// retry (COMPAT-NOTES fact 11).
func errTooManyRequests(format string, args ...any) *dis.Error {
	e := dis.NewError(dis.CodeTrafficControl, "Exceeded traffic control limit. "+format, args...)
	e.Status = http.StatusTooManyRequests
	return e
}
