package annotator

import (
	"context"
	"errors"

	"github.com/distillery-dev/distillery/internal/annotator/cache"
	"github.com/distillery-dev/distillery/internal/annotator/dataset"
	"github.com/distillery-dev/distillery/internal/annotator/prompt"
	"github.com/distillery-dev/distillery/internal/annotator/teacher"
	"github.com/distillery-dev/distillery/internal/contract"
)

// work annotates items until there are none left or a fatal error.
func (r *shardRun) work(ctx context.Context, items <-chan dataset.Item, out chan<- annotated) error {
	for item := range items {
		recs, err := r.annotate(ctx, item)
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
// when this answer proves the teacher works. A nil slice means the item was held back.
func (r *shardRun) annotate(ctx context.Context, item dataset.Item) ([]annotated, error) {
	messages := prompt.Build(r.cfg.Task, item.Input)
	key := cache.Key(r.cacheRequest(messages))
	if entry, ok, err := r.cache.Get(key); err != nil {
		r.opts.Log.Error(err, "reading the answer cache; asking the teacher", "id", item.ID)
	} else if ok {
		return []annotated{{rec: judge(r.cfg, item, entry.Content, entry.Usage), paid: false}}, nil
	}
	ticket := r.guard.ticket()
	ans, err := r.teacher.Complete(ctx, messages)
	var oversized *teacher.OversizedError
	switch {
	case errors.As(err, &oversized):
		// The teacher answered, too much: a final record, so that no retry pays for it again.
		return r.answered(ticket, tooLong(item, err)), nil
	case err != nil:
		return r.teacherFailed(ctx, item, err)
	}
	if err := r.cache.Put(key, cache.Entry{Content: ans.Content, Usage: ans.Usage}); err != nil {
		r.opts.Log.Error(err, "writing the answer cache; the record keeps the answer", "id", item.ID)
	}
	return r.answered(ticket, judge(r.cfg, item, ans.Content, ans.Usage)), nil
}

// answered is a paid answer's record plus the held inputs it releases: the teacher works.
func (r *shardRun) answered(ticket int, rec contract.Record) []annotated {
	recs := []annotated{{rec: rec, paid: true}}
	for _, held := range r.guard.succeeded(ticket) {
		recs = append(recs, annotated{rec: held, paid: true})
	}
	return recs
}

// teacherFailed records a refused input, holds back one that failed every retry, and turns an
// unreachable teacher or a cancelled run into a fatal error.
func (r *shardRun) teacherFailed(ctx context.Context, item dataset.Item, err error) ([]annotated, error) {
	var rejected *teacher.RejectedError
	var exhausted *teacher.ExhaustedError
	var unreach *teacher.UnreachableError
	switch {
	case errors.As(err, &rejected):
		return []annotated{{rec: teacherError(item, err), paid: true}}, nil
	case errors.As(err, &exhausted):
		if down := r.guard.failed(item, err); down != nil {
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
