package controllers

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/distillery-dev/distillery/api/v1alpha1"
	utiltesting "github.com/distillery-dev/distillery/controllers/testing"
)

func TestSpendCountersGrowByWhatEachStatusWriteAdded(t *testing.T) {
	forgetSpend("spend-ns", "metered") // the counters are global: start from none (go test -count=N)
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

func TestADeletedJobsSpendSeriesLeaveTheMetrics(t *testing.T) {
	spend := func(ns, name string) {
		before := &v1alpha1.DistillationJob{}
		after := before.DeepCopy()
		after.Namespace, after.Name = ns, name
		after.Status.Annotation = &v1alpha1.AnnotationStatus{Requests: 3, PromptTokens: 30, CompletionTokens: 9, CacheHits: 1, Cost: "0.5"}
		recordSpend(before, after)
	}
	spend("forget-ns", "a")
	spend("forget-ns", "b")
	if got := testutil.ToFloat64(teacherTokens.WithLabelValues("forget-ns", "a", "prompt")); got != 30 {
		t.Fatalf("prompt tokens of job a = %v, want 30", got)
	}
	forgetSpend("forget-ns", "a")
	if n := testutil.CollectAndCount(teacherTokens); n < 2 {
		t.Fatalf("job b's token series went too: %d series left", n)
	}
	if deleted := teacherTokens.DeletePartialMatch(map[string]string{"namespace": "forget-ns", "job": "a"}); deleted != 0 {
		t.Errorf("%d token series of the deleted job a were still there", deleted)
	}
	if deleted := teacherRequests.DeletePartialMatch(map[string]string{"namespace": "forget-ns", "job": "a"}); deleted != 0 {
		t.Errorf("job a's request series was still there")
	}
	if deleted := teacherTokens.DeletePartialMatch(map[string]string{"namespace": "forget-ns", "job": "b"}); deleted != 2 {
		t.Errorf("job b had %d token series, want 2 (prompt, completion)", deleted)
	}
}
