package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/distillery-dev/distillery/api/v1alpha1"
)

// The teacher's spend as Prometheus counters on the operator's metrics endpoint (the controller-runtime
// registry), per job. They grow by what a status write added to status.annotation, so they follow the
// live progress reports; an operator that restarts starts them from zero, which rate() and increase()
// handle as any counter reset.
var (
	teacherRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "distillery_teacher_requests_total",
		Help: "The teacher's paid answers for a DistillationJob (a request retried until answered counts once).",
	}, []string{"namespace", "job"})
	teacherTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "distillery_teacher_tokens_total",
		Help: "Tokens the teacher was paid for, by kind (prompt, completion).",
	}, []string{"namespace", "job", "kind"})
	teacherCost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "distillery_teacher_cost_total",
		Help: "What the teacher's tokens cost at spec.teacher.budget's prices (jobs with prices only), in their currency.",
	}, []string{"namespace", "job"})
	teacherCacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "distillery_teacher_cache_hits_total",
		Help: "Answers the shared cache gave instead of the teacher.",
	}, []string{"namespace", "job"})
)

func init() {
	metrics.Registry.MustRegister(teacherRequests, teacherTokens, teacherCost, teacherCacheHits)
}

// recordSpend adds to the counters what this pass's status write added to the job's spend.
func recordSpend(before, after *v1alpha1.DistillationJob) {
	a := after.Status.Annotation
	if a == nil {
		return
	}
	b := before.Status.Annotation
	if b == nil {
		b = &v1alpha1.AnnotationStatus{}
	}
	ns, job := after.Namespace, after.Name
	add := func(c prometheus.Counter, d float64) {
		if d > 0 {
			c.Add(d)
		}
	}
	add(teacherRequests.WithLabelValues(ns, job), float64(a.Requests-b.Requests))
	add(teacherTokens.WithLabelValues(ns, job, "prompt"), float64(a.PromptTokens-b.PromptTokens))
	add(teacherTokens.WithLabelValues(ns, job, "completion"), float64(a.CompletionTokens-b.CompletionTokens))
	add(teacherCacheHits.WithLabelValues(ns, job), float64(a.CacheHits-b.CacheHits))
	if a.Cost != "" {
		add(teacherCost.WithLabelValues(ns, job), parseDecimal(a.Cost, 0)-parseDecimal(b.Cost, 0))
	}
}

// forgetSpend drops a job's series, once the job is gone, so /metrics does not grow with every job ever run.
func forgetSpend(namespace, job string) {
	l := prometheus.Labels{"namespace": namespace, "job": job}
	for _, c := range []*prometheus.CounterVec{teacherRequests, teacherTokens, teacherCost, teacherCacheHits} {
		c.DeletePartialMatch(l)
	}
}
