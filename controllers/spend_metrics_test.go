package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

func TestSpendCountersGrowByWhatEachStatusWriteAdded(t *testing.T) {
	before := utiltesting.MakeJob("metered", "spend-ns").Obj()
	after := before.DeepCopy()
	after.Status.Annotation = &v1alpha1.AnnotationStatus{Requests: 10, PromptTokens: 1000, CompletionTokens: 100, CacheHits: 2, Cost: "0.0045"}
	recordSpend(before, after)
	later := after.DeepCopy()
	later.Status.Annotation = &v1alpha1.AnnotationStatus{Requests: 25, PromptTokens: 2500, CompletionTokens: 250, CacheHits: 2, Cost: "0.0113"}
	recordSpend(after, later)
	recordSpend(later, later.DeepCopy()) // nothing new: nothing added

	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"requests", testutil.ToFloat64(teacherRequests.WithLabelValues("spend-ns", "metered")), 25},
		{"prompt tokens", testutil.ToFloat64(teacherTokens.WithLabelValues("spend-ns", "metered", "prompt")), 2500},
		{"completion tokens", testutil.ToFloat64(teacherTokens.WithLabelValues("spend-ns", "metered", "completion")), 250},
		{"cache hits", testutil.ToFloat64(teacherCacheHits.WithLabelValues("spend-ns", "metered")), 2},
		{"cost", testutil.ToFloat64(teacherCost.WithLabelValues("spend-ns", "metered")), 0.0113},
	} {
		if d := c.got - c.want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s counter = %v, want %v", c.name, c.got, c.want)
		}
	}
}
