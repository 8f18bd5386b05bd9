package annotator

import (
	"context"
	"errors"

	"github.com/distillery-dev/distillery/internal/annotator/budget"
	"github.com/distillery-dev/distillery/internal/annotator/cache"
	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/annotator/teacher"
	"github.com/distillery-dev/distillery/internal/contract"
)

// workItem is one input on its way to a worker; eval marks a line of the eval file.
type workItem struct {
	item dataset.Item
	eval bool
}

// work annotates items until there are none left or a fatal error.
func (r *shardRun) work(ctx context.Context, items <-chan workItem, out chan<- annotated) error {
	for w := range items {
		recs, err := r.annotate(ctx, w)
		if err != nil {
			return err
		}
		for _, a := range recs {
			out <- a // the writer drains until the end, so this never blocks forever
		}
	}
	return nil
}

// annotate produces the records one item releases: its own, plus inputs held back by the outage guard
// when this answer proves the teacher works. A nil slice means the item was held back, or left unasked
// because the budget ran out (the cache still answers then: it costs nothing).
func (r *shardRun) annotate(ctx context.Context, w workItem) ([]annotated, error) {
	item := w.item
	messages := prompt.Build(r.cfg.Task, item.Input)
	key := cache.Key(r.cacheRequest(messages))
	if entry, ok, err := r.cache.Get(key); err != nil {
		r.opts.Log.Error(err, "reading the answer cache; asking the teacher", "id", item.ID)
	} else if ok {
		rec := Judge(r.cfg, item, entry.Content, entry.Usage)
		rec.Cached = true
		return []annotated{{rec: rec, eval: w.eval}}, nil
	}
	res, err := r.reserve(ctx, messages)
	switch {
	case budget.IsExceeded(err):
		r.tally.addUnasked()
		return nil, nil
	case err != nil:
		return nil, err
	}
	ticket := r.guard.ticket()
	ans, err := r.teacher.Complete(ctx, messages)
	var oversized *teacher.OversizedError
	switch {
	case errors.As(err, &oversized):
		// The teacher answered, too much: a final record, so that no retry pays for it again. It was
		// billed, for tokens the unread part of the answer held.
		r.settle(res, &contract.Usage{})
		return r.answered(ticket, w, tooLong(item, err)), nil
	case err != nil:
		r.settle(res, nil)
		return r.teacherFailed(ctx, w, err)
	}
	r.settle(res, &ans.Usage)
	if err := r.cache.Put(key, cache.Entry{Content: ans.Content, Usage: ans.Usage}); err != nil {
		r.opts.Log.Error(err, "writing the answer cache; the record keeps the answer", "id", item.ID)
	}
	return r.answered(ticket, w, Judge(r.cfg, item, ans.Content, ans.Usage)), nil
}

// reserve holds the budget for one request; nil without a budget.
func (r *shardRun) reserve(ctx context.Context, messages []prompt.Message) (*budget.Reservation, error) {
	if r.meter == nil {
		return nil, nil
	}
	n := 0
	for _, m := range messages {
		n += len(m.Content)
	}
	return r.meter.Start(ctx, n)
}

// settle ends a request's hold on the budget; usage is nil when the teacher was not paid.
func (r *shardRun) settle(res *budget.Reservation, usage *contract.Usage) {
	if r.meter != nil && res != nil {
		r.meter.Settle(res, usage)
	}
}

// answered is a paid answer's record plus the held inputs it releases: the teacher works.
func (r *shardRun) answered(ticket int, w workItem, rec contract.Record) []annotated {
	return append([]annotated{{rec: rec, eval: w.eval}}, r.guard.succeeded(ticket)...)
}

// teacherFailed records a refused input, holds back one that failed every retry, and turns an
// unreachable teacher or a cancelled run into a fatal error.
func (r *shardRun) teacherFailed(ctx context.Context, w workItem, err error) ([]annotated, error) {
	var rejected *teacher.RejectedError
	var exhausted *teacher.ExhaustedError
	var unreach *teacher.UnreachableError
	switch {
	case errors.As(err, &rejected):
		return []annotated{{rec: teacherError(w.item, err), eval: w.eval}}, nil
	case errors.As(err, &exhausted):
		if down := r.guard.failed(w, err); down != nil {
			return nil, unreachable(down)
		}
		return nil, nil
	case errors.As(err, &unreach):
		return nil, unreachable(err)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		return nil, err
	}
}

func (r *shardRun) cacheRequest(messages []prompt.Message) cache.Request {
	t := r.cfg.Teacher
	return cache.Request{
		Endpoint: t.Endpoint, Model: t.Model, Messages: messages, Temperature: t.Temperature, MaxTokens: t.MaxTokens,
	}
}
