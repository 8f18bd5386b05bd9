package teacher

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/contract"
	"github.com/distillery-dev/distillery/internal/secreturl"
)

type chatRequest struct {
	Model       string           `json:"model"`
	Messages    []prompt.Message `json:"messages"`
	Temperature float64          `json:"temperature"`
	MaxTokens   int              `json:"max_tokens,omitempty"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// attempt sends one request with the per-attempt timeout.
func (c *Client) attempt(ctx context.Context, messages []prompt.Message) (Answer, error) {
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, messages)
	if err != nil {
		return Answer{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{}, &transientError{msg: "sending the request: " + err.Error(), connect: true}
	}
	defer resp.Body.Close()
	c.contacted.Store(true)
	limit := c.cfg.MaxResponseBytes
	if resp.StatusCode == http.StatusOK && resp.ContentLength > int64(limit) {
		return Answer{}, &OversizedError{Size: resp.ContentLength, Limit: limit}
	}
	// Never more than limit+1 bytes of any answer in memory, whatever the server sends.
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return Answer{}, &transientError{msg: fmt.Sprintf("reading the %d answer: %v", resp.StatusCode, err)}
	}
	if len(body) > limit {
		if resp.StatusCode == http.StatusOK {
			return Answer{}, &OversizedError{Size: -1, Limit: limit}
		}
		body = body[:limit] // an error's message is read from its start
	}
	return c.interpret(resp, body)
}

func (c *Client) newRequest(ctx context.Context, messages []prompt.Message) (*http.Request, error) {
	body, err := json.Marshal(chatRequest{
		Model: c.cfg.Model, Messages: messages, Temperature: c.cfg.Temperature, MaxTokens: c.cfg.MaxTokens,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the chat request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the chat request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	return req, nil
}

// interpret turns a status and body into an answer, a rejection or a transient failure.
func (c *Client) interpret(resp *http.Response, body []byte) (Answer, error) {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		wait := retryAfter(resp.Header.Get("Retry-After"))
		c.pause(wait)
		return Answer{}, &transientError{msg: "teacher answered 429: " + serverMessage(body), retryAfter: wait}
	case resp.StatusCode >= 500:
		return Answer{}, &transientError{
			msg:        fmt.Sprintf("teacher answered %d: %s", resp.StatusCode, serverMessage(body)),
			retryAfter: retryAfter(resp.Header.Get("Retry-After")),
		}
	case resp.StatusCode >= 400:
		return Answer{}, &RejectedError{StatusCode: resp.StatusCode, Message: c.redact(serverMessage(body))}
	case resp.StatusCode != http.StatusOK:
		return Answer{}, &transientError{msg: fmt.Sprintf("teacher answered %d", resp.StatusCode)}
	}
	var parsed chatResponse
	if err := json.Unmarshal(body, &parsed); err != nil {
		return Answer{}, &transientError{msg: "teacher's answer is not JSON: " + err.Error()}
	}
	if len(parsed.Choices) == 0 {
		return Answer{}, &transientError{msg: "teacher's answer has no choices"}
	}
	return Answer{
		Content: parsed.Choices[0].Message.Content,
		Usage:   contract.Usage{PromptTokens: parsed.Usage.PromptTokens, CompletionTokens: parsed.Usage.CompletionTokens},
	}, nil
}

// maxServerMessageBytes bounds the server's words kept in an error (and so in a record).
const maxServerMessageBytes = 300

// serverMessage extracts the message of an OpenAI-style error body, or returns the start of the body, in
// at most maxServerMessageBytes.
func serverMessage(body []byte) string {
	var withObject struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	var flat struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	}
	msg := ""
	switch {
	case json.Unmarshal(body, &withObject) == nil && withObject.Error.Message != "":
		msg = withObject.Error.Message
	case json.Unmarshal(body, &flat) == nil:
		msg = cmp.Or(flat.Error, flat.Message, flat.Detail)
	}
	if msg == "" {
		msg = string(body)
	}
	msg = strings.TrimSpace(strings.ToValidUTF8(msg, ""))
	if len(msg) > maxServerMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxServerMessageBytes], "") + "..."
	}
	return cmp.Or(msg, "(empty body)")
}

// redactErr rewrites an error's text without the API key or the endpoint's secrets, keeping its type for
// errors.As.
func (c *Client) redactErr(err error) error {
	if err == nil || c.redact(err.Error()) == err.Error() {
		return err
	}
	var rejected *RejectedError
	if errors.As(err, &rejected) {
		return &RejectedError{StatusCode: rejected.StatusCode, Message: c.redact(rejected.Message)}
	}
	var exhausted *ExhaustedError
	if errors.As(err, &exhausted) {
		return &ExhaustedError{Attempts: exhausted.Attempts, Last: errors.New(c.redact(exhausted.Last.Error()))}
	}
	return errors.New(c.redact(err.Error()))
}

// redact replaces the API key, which servers echo in errors ("Incorrect API key provided: sk-..."), and
// the endpoint's userinfo and query, which Go's HTTP errors quote with the URL.
func (c *Client) redact(s string) string {
	if c.cfg.APIKey != "" {
		s = strings.ReplaceAll(s, c.cfg.APIKey, "[redacted]")
	}
	return secreturl.Scrub(s, c.cfg.Endpoint)
}
