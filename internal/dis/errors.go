package dis

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DIS error codes (§6.1 of the reference) used by the client and the server.
const (
	CodeInvalidProject        = "DIS.4117"
	CodeInvalidRequest        = "DIS.4200"
	CodeInvalidPartitionID    = "DIS.4201"
	CodeEmptyRequest          = "DIS.4202"
	CodeStreamNotRunning      = "DIS.4205"
	CodeInvalidCursorType     = "DIS.4215"
	CodeInvalidSequenceNumber = "DIS.4216"
	CodeInvalidCursor         = "DIS.4217"
	CodeSequenceOutOfRange    = "DIS.4224"
	CodeExpiredCursor         = "DIS.4225"
	CodeRecordExpired         = "DIS.4226"
	CodeBadRequestBody        = "DIS.4300"
	CodeStreamNotFound        = "DIS.4301"
	CodePartitionNotFound     = "DIS.4302"
	CodeTrafficControl        = "DIS.4303"
	CodeTooManyStreamRequests = "DIS.4305"
	CodeStreamExists          = "DIS.4307"
	CodeInsufficientQuota     = "DIS.4308"
	CodeTooManyFailures       = "DIS.4309"
	CodePartitionExpired      = "DIS.4319"
	CodeAppQuota              = "DIS.4329"
	CodeAppExists             = "DIS.4330"
	CodeAppInUse              = "DIS.4331"
	CodeAppNotFound           = "DIS.4332"
	CodeConsumerQuota         = "DIS.4339"
	CodeInvalidData           = "DIS.4360"
	CodeInvalidRBAC           = "DIS.4116"
	CodeSystemError           = "DIS.5000"
	CodeAuthFailed            = "APIGW.0301"
	CodeAuthForbidden         = "APIGW.0302"
)

// ErrorBody is the JSON body of every DIS error reply. The reference documents
// error_code/error_msg; the legacy SDKs read errorCode/message. Servers fill both
// pairs (COMPAT-NOTES fact 10); clients accept either.
type ErrorBody struct {
	ErrorCode  string `json:"error_code,omitempty"`
	ErrorMsg   string `json:"error_msg,omitempty"`
	ErrorCode2 string `json:"errorCode,omitempty"`
	Message    string `json:"message,omitempty"`
	Code       string `json:"code,omitempty"`
}

// Error is a DIS API error: an HTTP status with a DIS.xxxx code and message.
// Transport failures are not *Error; use errors.As to tell them apart.
type Error struct {
	Status     int           // HTTP status code
	Code       string        // e.g. DIS.4301; empty when the body carried none
	Message    string        // error_msg, or the raw body when it was not JSON
	RetryAfter time.Duration // from a Retry-After header, 0 if absent
	RequestID  string        // X-Request-Id of the reply, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "DIS HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Body returns the error as the JSON body a server sends, with both key pairs.
func (e *Error) Body() ErrorBody {
	return ErrorBody{ErrorCode: e.Code, ErrorMsg: e.Message, ErrorCode2: e.Code, Message: e.Message}
}

// NewError builds an *Error with the status the reference gives the code:
// 400 for DIS.4xxx except 403 for DIS.4116, 500 for DIS.5xxx.
func NewError(code, format string, args ...any) *Error {
	return &Error{Status: StatusFor(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

// StatusFor returns the HTTP status the reference (§6.1) lists for a DIS code.
func StatusFor(code string) int {
	switch {
	case code == CodeInvalidRBAC:
		return http.StatusForbidden
	case strings.HasPrefix(code, "DIS.5"):
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// IsCode reports whether err is a DIS *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// RetryableRecordError reports whether a per-record PutRecords error code is
// transient: flow control (DIS.4303) and server errors (DIS.5xxx). This matches
// the official SDKs' records.retriable.error.code default (COMPAT-NOTES fact 11).
func RetryableRecordError(code string) bool {
	return code == CodeTrafficControl || strings.HasPrefix(code, "DIS.5")
}
