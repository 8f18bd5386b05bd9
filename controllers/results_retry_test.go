package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWithRetryNote(t *testing.T) {
	failed := func(name, msg string, age time.Duration) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
			Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: msg}},
			}}},
		}
	}
	running := corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if got := withRetryNote("running", []corev1.Pod{running}); got != "running" {
		t.Errorf("no failed pod: got %q", got)
	}
	got := withRetryNote("running", []corev1.Pod{failed("old", "first error", time.Hour), failed("new", "KeyError: uid", time.Minute), running})
	for _, want := range []string{"2 pod(s) failed", "new", "KeyError: uid"} {
		if !strings.Contains(got, want) {
			t.Errorf("message %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "first error") {
		t.Errorf("message %q names the older failure, not the newest", got)
	}
}
